/* bench.c - `mae bench`: throughput on synthetic input (like llama-bench). --mode train times
 * training steps (forward, backward, AdamW) with the time per phase (encoder, decoder, loss,
 * backward, optimizer); --mode infer times encoder-only inference on all patches
 * (mae_forward_encoder). Both report img/s, achieved GFLOP/s, its share of a measured SGEMM
 * peak, and the peak RSS against the model's own buffers.
 * --device cuda: the input comes from the backend's pinned host memory, the clock is read
 * after a device sync, and it reports img/s, ms/step, model TFLOP/s counted as the GPU peer
 * (torch_mae_gpu.py flops_per_img), MFU against --peak_tflops, and the backend's peak device
 * memory; no SGEMM peak, no phases (host-side times of asynchronous work). --json FILE (any
 * device) writes the numbers as one JSON object; on cuda a "RESULT {...}" line repeats it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cblas.h>

#include "cli.h"
#include "common.h"
#include "model/model.h"
#include "rng.h"

#define PEAK_N 2048 /* SGEMM peak: (PEAK_N x PEAK_N) @ (PEAK_N x PEAK_N) */

/* Best-of-3 GFLOP/s of cblas_sgemm (RowMajor, NoTrans, NoTrans) on PEAK_N^3 floats, after one
 * warmup call, at the BLAS thread count already set. Allocates 3 * PEAK_N^2 floats (48 MiB)
 * and frees them before returning. */
static double measure_sgemm_peak(void) {
    size_t nn = (size_t)PEAK_N * PEAK_N;
    float *a = mae_xmalloc(nn * sizeof(float)), *b = mae_xmalloc(nn * sizeof(float));
    float *c = mae_xmalloc(nn * sizeof(float));
    mae_rng r;
    mae_rng_seed(&r, 2);
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)mae_rng_normal(&r);
        b[i] = (float)mae_rng_normal(&r);
        c[i] = 0.0f;
    }
    double best = 0;
    for (int it = 0; it < 4; it++) { /* it 0: warmup */
        double t0 = mae_clock();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, PEAK_N, PEAK_N, PEAK_N, 1.0f, a,
                    PEAK_N, b, PEAK_N, 0.0f, c, PEAK_N);
        double dt = mae_clock() - t0;
        if (it > 0 && (best == 0 || dt < best)) best = dt;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * PEAK_N * PEAK_N * (double)PEAK_N / best / 1e9;
}

/* ru_maxrss: the process's high-water resident set, in bytes (Linux reports KiB) */
static double peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss * 1024.0;
}

/* --synthetic smooth: image b, channel c = an offset (normal, variance 1/2) plus 2 random plane
 * waves of at most 3 cycles per image side (amplitude 1/2: variance 1/8 each), 3/4 in all. Unlike
 * white noise, a masked patch of such an image is predictable from the visible ones (first of
 * all its offset), so the training loss falls and a precision check (--loss_window) compares
 * losses that training actually moved. */
static void smooth_images(float *imgs, int B, int C, int S, mae_rng *r) {
    const double two_pi = 6.283185307179586;
    for (int bc = 0; bc < B * C; bc++) {
        double fx[2], fy[2], ph[2], off = 0.7071067811865476 * mae_rng_normal(r);
        for (int k = 0; k < 2; k++) {
            fx[k] = 6.0 * mae_rng_uniform(r) - 3.0;
            fy[k] = 6.0 * mae_rng_uniform(r) - 3.0;
            ph[k] = two_pi * mae_rng_uniform(r);
        }
        float *x = imgs + (size_t)bc * S * S;
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) {
                double v = 0, u = (double)j / S, w = (double)i / S;
                for (int k = 0; k < 2; k++) v += sin(two_pi * (fx[k] * u + fy[k] * w) + ph[k]);
                x[(size_t)i * S + j] = (float)(off + 0.5 * v);
            }
    }
}

/* A training step's FLOPs per image as the GPU peer counts them (torch_mae_gpu.py
 * flops_per_img): 3x the forward matmul FLOPs with the patch embedding on all L patches (timm's
 * PatchEmbed runs before the masking), where cli_forward_flops embeds the K kept ones. */
static double peer_train_flops(const mae_config *c, int K) {
    double L = mae_config_num_patches(c), P = mae_config_patch_dim(c), D = c->embed_dim;
    return 3.0 * (cli_forward_flops(c, K) + 2.0 * (L - K) * P * D);
}

/* mean upload / download time (s) of n bytes between the pinned host buffer h and the device
 * buffer d, 3 reps after one untimed, each between syncs */
static double time_copy(const mae_backend *be, float *d, float *h, size_t n, int up) {
    double t = 0;
    for (int it = 0; it < 4; it++) {
        be->sync();
        double t0 = mae_clock();
        if (up)
            be->upload(d, h, n);
        else
            be->download(h, d, n);
        be->sync();
        if (it > 0) t += mae_clock() - t0;
    }
    return t / 3;
}

/* a JSON number, or null when not finite */
static void json_num(FILE *f, const char *key, double v, int last) {
    if (isfinite(v))
        fprintf(f, "\"%s\": %.6g%s", key, v, last ? "" : ", ");
    else
        fprintf(f, "\"%s\": null%s", key, last ? "" : ", ");
}

typedef struct bench_result {
    const char *device, *model, *mode, *precision, *synthetic;
    int batch, steps, warmup, threads, loss_window;
    uint64_t seed;
    double params_m, img_s, ms_step, flops_img, tflops, peak_tflops, mfu, peak_mem_gib, rss_mb,
        loss_last, loss_mean, h2d_ms, d2h_ms;
} bench_result;

static void json_write(FILE *f, const bench_result *r) {
    fprintf(f, "{\"device\": \"%s\", \"model\": \"%s\", \"mode\": \"%s\", \"precision\": \"%s\", "
               "\"synthetic\": \"%s\", \"batch\": %d, \"steps\": %d, \"warmup\": %d, "
               "\"threads\": %d, \"seed\": %llu, \"loss_window\": %d, ",
            r->device, r->model, r->mode, r->precision, r->synthetic, r->batch, r->steps,
            r->warmup, r->threads, (unsigned long long)r->seed, r->loss_window);
    json_num(f, "params_m", r->params_m, 0);
    json_num(f, "img_per_s", r->img_s, 0);
    json_num(f, "ms_per_step", r->ms_step, 0);
    json_num(f, "flops_per_img", r->flops_img, 0);
    json_num(f, "tflops", r->tflops, 0);
    json_num(f, "peak_tflops", r->peak_tflops > 0 ? r->peak_tflops : NAN, 0);
    json_num(f, "mfu", r->mfu, 0);
    json_num(f, "peak_mem_gb", r->peak_mem_gib, 0);
    json_num(f, "rss_mb", r->rss_mb, 0);
    json_num(f, "h2d_ms", r->h2d_ms, 0);
    json_num(f, "d2h_ms", r->d2h_ms, 0);
    json_num(f, "loss", r->loss_last, 0);
    json_num(f, "loss_mean", r->loss_mean, 1);
    fprintf(f, "}");
}

int cmd_bench(int argc, char **argv) {
    cli_model_flags mf = {.model = "tiny-28"};
    int batch = 64, steps = 10, warmup = 2, threads = 0, loss_window = 0;
    const char *mode = "train", *precision = NULL, *device = "cpu", *json = NULL;
    const char *synthetic = "noise";
    double peak = 0, peak_tflops = 0, lr = 1e-4;
    uint64_t seed = 0;
    enum { NEXTRA = 14 };
    arg_spec s[CLI_MODEL_NFLAGS + NEXTRA];
    cli_model_specs(s, &mf);
    arg_spec extra[NEXTRA] = {
        {"batch_size", ARG_INT, &batch, "images per step (default 64)", 0},
        {"steps", ARG_INT, &steps, "timed steps (default 10)", 0},
        {"warmup", ARG_INT, &warmup, "untimed steps first (default 2)", 0},
        {"threads", ARG_INT, &threads, "threads (default: all cores)", 0},
        {"mode", ARG_STR, &mode,
         "train: training steps (forward, backward, AdamW); infer: encoder-only inference on "
         "all patches (the model is created with mask_ratio 0) (default train)", 0},
        {"precision", ARG_STR, &precision, "matmul precision of the Linear layers: fp32 or bf16 "
                                           "(cpu: bf16 needs AVX512_BF16) (default: bf16 on "
                                           "cuda, fp32 on cpu)", 0},
        {"peak", ARG_DOUBLE, &peak,
         "GFLOP/s that pct_peak (% of peak) refers to; 0 measures cblas_sgemm on 2048^3 at "
         "--threads first (default 0; not used with --device cuda)", 0},
        {"device", ARG_STR, &device, "cpu or cuda (default cpu)", 0},
        {"peak_tflops", ARG_DOUBLE, &peak_tflops,
         "TFLOP/s that MFU refers to (e.g. the measured bf16 matmul peak of the GPU); 0: no MFU "
         "(default 0)", 0},
        {"json", ARG_STR, &json, "also write the results as one JSON object to this file", 0},
        {"loss_window", ARG_INT, &loss_window,
         "train: also print the mean loss of the last N timed steps (0: off) (default 0)", 0},
        {"synthetic", ARG_STR, &synthetic,
         "input images: noise (normal(0,1) pixels) or smooth (random low-frequency waves, "
         "learnable: for loss checks) (default noise)", 0},
        {"seed", ARG_U64, &seed, "seed of the weight init and the masking noise (default 0)", 0},
        {"lr", ARG_DOUBLE, &lr, "train: AdamW base lr (every step runs at epoch 1.0 of the default "
                                    "schedule without warmup: about this lr) (default 1e-4)", 0},
    };
    memcpy(s + CLI_MODEL_NFLAGS, extra, sizeof extra);
    int n = CLI_MODEL_NFLAGS + NEXTRA;
    mae_error err = {{0}};
    int rc = args_parse(s, n, argc, argv, 2, "bench", &err);
    if (!precision) precision = cli_default_precision(device);
    if (rc == 1) {
        args_help(s, n, "bench",
                  "Times MAE training steps (--mode train) or encoder-only inference (--mode "
                  "infer) on synthetic images. Prints img/s, ms/step by phase, achieved GFLOP/s "
                  "and its % of a measured SGEMM peak, and the peak RSS; with --device cuda, "
                  "img/s, ms/step, model TFLOP/s, MFU (--peak_tflops) and peak GPU memory.");
        return 0;
    }
    mae_config cfg;
    if (rc != MAE_OK || cli_model_config(s, &mf, &cfg, &err) != MAE_OK) {
        fprintf(stderr, "mae bench: %s\n", err.msg);
        return 2;
    }
    if (steps < 1 || warmup < 0 || batch < 1 || threads < 0) {
        fprintf(stderr, "mae bench: --steps must be >= 1, --warmup >= 0, --batch_size >= 1, "
                        "--threads >= 0\n");
        return 2;
    }
    int infer;
    if (strcmp(mode, "train") == 0)
        infer = 0;
    else if (strcmp(mode, "infer") == 0)
        infer = 1;
    else {
        fprintf(stderr, "mae bench: --mode must be train or infer, got '%s'\n", mode);
        return 2;
    }
    /* checked here so that a typo fails before the model is built; whether this machine can
     * run it is mae_model_set_precision's answer below */
    if (strcmp(precision, "fp32") != 0 && strcmp(precision, "bf16") != 0) {
        fprintf(stderr, "mae bench: --precision must be fp32 or bf16, got '%s'\n", precision);
        return 2;
    }
    if (!(peak >= 0)) {
        fprintf(stderr, "mae bench: --peak must be >= 0 GFLOP/s (0: measure it), got %g\n", peak);
        return 2;
    }
    if (!(peak_tflops >= 0)) {
        fprintf(stderr, "mae bench: --peak_tflops must be >= 0 (0: no MFU), got %g\n",
                peak_tflops);
        return 2;
    }
    if (loss_window < 0 || (loss_window > 0 && infer)) {
        fprintf(stderr, "mae bench: --loss_window must be >= 0, and 0 with --mode infer\n");
        return 2;
    }
    if (!(lr >= 0)) {
        fprintf(stderr, "mae bench: --lr must be >= 0, got %g\n", lr);
        return 2;
    }
    int smooth;
    if (strcmp(synthetic, "noise") == 0)
        smooth = 0;
    else if (strcmp(synthetic, "smooth") == 0)
        smooth = 1;
    else {
        fprintf(stderr, "mae bench: --synthetic must be noise or smooth, got '%s'\n", synthetic);
        return 2;
    }
    /* the device before any work: a missing GPU is a clean error naming the reason */
    char why[256];
    const mae_backend *dev = mae_backend_find(device, why, sizeof why);
    if (!dev) {
        fprintf(stderr, "mae bench: --device %s: %s\n", device, why);
        return 2;
    }
    int gpu = strcmp(dev->name, "cpu") != 0;
    if (loss_window > steps) loss_window = steps;
    if (threads > 0) mae_set_num_threads(threads);
    /* The SGEMM peak runs BEFORE the model exists and frees its 48 MiB before the model is
     * created: ru_maxrss is a high-water mark, so measuring later would add the SGEMM buffers to
     * the model's own peak. Measured first, they can only set the mark for models needing less
     * than ~48 MiB in all (tiny ones); the RSS line says so when that can be the case. */
    int measured = !gpu && peak == 0;
    if (gpu) {
        printf("device: %s (no SGEMM peak: TFLOP/s are model FLOPs as torch_mae_gpu.py counts "
               "them)\n", dev->name);
    } else if (measured) {
        peak = measure_sgemm_peak();
        printf("sgemm peak: %.1f GFLOP/s (%d^3, %d threads)\n", peak, PEAK_N,
               mae_get_num_threads());
    } else {
        printf("sgemm peak: %.1f GFLOP/s (given by --peak)\n", peak);
    }
    fflush(stdout);

    int L = mae_config_num_patches(&cfg);
    if (infer) cfg.mask_ratio = 0.0; /* the encoder then holds all 1+L tokens */
    mae_model *m = mae_model_create(&cfg, batch, device, &err);
    if (!m) {
        fprintf(stderr, "mae bench: %s\n", err.msg);
        return 1;
    }
    if (mae_model_set_precision(m, precision, &err) != MAE_OK) {
        fprintf(stderr, "mae bench: %s\n", err.msg);
        mae_model_free(m);
        return 2;
    }
    const mae_backend *be = m->be;
    mae_model_init(m, seed);
    mae_trainer *t = NULL;
    if (!infer) {
        mae_train_config tc;
        mae_train_config_default(&tc);
        tc.batch_size = batch;
        tc.lr = lr;
        tc.warmup_epochs = 0;
        t = mae_trainer_create(m, &tc, &err);
        if (!t) {
            fprintf(stderr, "mae bench: %s\n", err.msg);
            mae_model_free(m);
            return 1;
        }
    }
    int K = mae_config_len_keep(&cfg), D = cfg.embed_dim;
    size_t npix = (size_t)batch * cfg.in_chans * cfg.img_size * cfg.img_size;
    size_t nlat = (size_t)batch * (1 + L) * D;
    /* on a GPU the buffers the steps copy from and to are pinned (the backend's host_alloc), as
     * a real input pipeline's would be */
    float *imgs = gpu ? be->host_alloc(npix * sizeof(float)) : mae_xmalloc(npix * sizeof(float));
    float *latent = NULL;
    if (infer)
        latent = gpu ? be->host_alloc(nlat * sizeof(float)) : mae_xmalloc(nlat * sizeof(float));
    if (!imgs || (infer && !latent)) {
        fprintf(stderr, "mae bench: the %s backend could not allocate %.1f MB of pinned host "
                        "memory\n", be->name, (npix + (infer ? nlat : 0)) * 4.0 / 1e6);
        if (imgs) be->host_free(imgs);
        mae_trainer_free(t);
        mae_model_free(m);
        return 1;
    }
    float *noise = infer ? NULL : mae_xmalloc((size_t)batch * L * sizeof(float));
    float *losses = loss_window > 0 ? mae_xmalloc(sizeof(float) * steps) : NULL;
    mae_rng r;
    mae_rng_seed(&r, 1);
    if (smooth)
        smooth_images(imgs, batch, cfg.in_chans, cfg.img_size, &r);
    else
        for (size_t i = 0; i < npix; i++) imgs[i] = (float)mae_rng_normal(&r);
    double t0 = 0;
    float loss = 0;
    uint64_t *ids = mae_xmalloc(sizeof(uint64_t) * batch);
    for (int it = 0; it < warmup + steps; it++) {
        if (it == warmup) {
            be->sync(); /* the clock starts once the warmup's queued work is done */
            t0 = mae_clock();
            mae_phase_reset(m);
        }
        if (infer) {
            rc = mae_forward_encoder(m, imgs, batch, latent, &err);
        } else {
            for (int b = 0; b < batch; b++) ids[b] = (uint64_t)it * batch + b;
            mae_make_noise(noise, batch, L, seed, ids);
            rc = mae_trainer_step(t, imgs, noise, batch, 1.0, &loss, &err);
            if (losses && it >= warmup) losses[it - warmup] = loss;
        }
        if (rc != MAE_OK) {
            fprintf(stderr, "mae bench: %s\n", err.msg);
            return 1;
        }
    }
    be->sync(); /* and stops once the last step's work is */
    double dt = mae_clock() - t0;
    double rss = peak_rss_bytes();
    double ips = (double)batch * steps / dt;
    double loss_mean = NAN;
    if (losses) {
        double sum = 0;
        for (int i = steps - loss_window; i < steps; i++) sum += losses[i];
        loss_mean = sum / loss_window;
    }
    size_t pb, ab, eb, db;
    mae_model_memory(m, &pb, &ab, &eb, &db);
    const char *prec_name = mae_model_precision(m) == MAE_PREC_BF16 ? "bf16" : "fp32";
    bench_result res = {.device = be->name, .model = mf.model, .mode = infer ? "infer" : "train",
                        .precision = prec_name, .synthetic = synthetic, .batch = batch,
                        .steps = steps, .warmup = warmup, .threads = mae_get_num_threads(),
                        .loss_window = loss_window, .seed = seed,
                        .params_m = mae_num_params(m, 1) / 1e6, .img_s = ips,
                        .ms_step = 1e3 * dt / steps, .peak_tflops = peak_tflops,
                        .rss_mb = rss / 1e6, .loss_last = infer ? NAN : loss,
                        .loss_mean = loss_mean, .h2d_ms = NAN, .d2h_ms = NAN};
    if (gpu) {
        /* FLOPs as the peer counts them; inference: the encoder forward on all 1+L tokens */
        double fl = infer ? cli_encoder_flops(&cfg) : peer_train_flops(&cfg, K);
        double peak_mem = (double)be->mem_peak(); /* before the copies below (no new buffers) */
        res.flops_img = fl;
        res.tflops = fl * ips / 1e12;
        res.mfu = peak_tflops > 0 ? res.tflops / peak_tflops : NAN;
        res.peak_mem_gib = peak_mem / (1024.0 * 1024.0 * 1024.0);
        /* what each step spends copying: the batch up (every mode), the latent down (infer) */
        res.h2d_ms = 1e3 * time_copy(be, m->imgs, imgs, npix * sizeof(float), 1);
        if (infer) res.d2h_ms = 1e3 * time_copy(be, m->enc.lnf, latent, nlat * sizeof(float), 0);
        printf("model %s: %.2fM params, L=%d, %s %d, batch %d, %s, precision %s, device %s\n",
               mf.model, res.params_m, L, infer ? "tokens" : "visible", infer ? 1 + L : K,
               batch, infer ? "encoder-only inference on all patches" : "training", prec_name,
               be->name);
        printf("bench: model=%s device=%s batch=%d steps=%d img/s=%.2f ms/step=%.2f tflops=%.2f "
               "loss=%.4f mode=%s precision=%s peak_mem_gb=%.2f",
               mf.model, be->name, batch, steps, ips, res.ms_step, res.tflops, (double)loss,
               res.mode, prec_name, res.peak_mem_gib);
        if (peak_tflops > 0) printf(" mfu=%.1f%% peak_tflops=%.1f", 100 * res.mfu, peak_tflops);
        printf("\n");
        printf("throughput: %.2f TFLOP/s at %.2f GFLOP per image (%s, as torch_mae_gpu.py)",
               res.tflops, fl / 1e9,
               infer ? "encoder forward on all tokens" : "3x forward matmul FLOPs");
        if (peak_tflops > 0)
            printf(" = %.1f%% MFU of %.1f TFLOP/s", 100 * res.mfu, peak_tflops);
        printf("\n");
        printf("memory: peak device %.2f GiB (mem_peak: buffers, scratch, library workspaces); "
               "model buffers: params %.1f MB, activations %.1f MB\n",
               res.peak_mem_gib, pb / 1e6, ab / 1e6);
        printf("copies per step (inside ms/step): batch upload %.2f ms (%.1f MB pinned)",
               res.h2d_ms, npix * 4.0 / 1e6);
        if (infer) printf(", latent download %.2f ms (%.1f MB)", res.d2h_ms, nlat * 4.0 / 1e6);
        printf("\n");
        if (getenv("MAE_SYNC_PHASES")) { /* the model waited for the device at each boundary */
            double ph[MAE_NUM_PHASES];
            mae_phase_seconds(m, ph);
            printf("phases (ms/step, device synced at each boundary):");
            for (int k = 0; k < MAE_NUM_PHASES; k++)
                if (!infer || k == MAE_PHASE_ENCODER)
                    printf(" %s %.2f", mae_phase_name(k), 1e3 * ph[k] / steps);
            printf("\n");
        }
    } else {
        /* a training step ~ 3x the forward matmul FLOPs; inference is the encoder forward */
        double flops = infer ? cli_encoder_flops(&cfg) : 3.0 * cli_forward_flops(&cfg, K);
        double gflops = flops * ips / 1e9, pct = 100.0 * gflops / peak;
        res.flops_img = flops;
        res.tflops = gflops / 1e3;
        res.mfu = peak_tflops > 0 ? res.tflops / peak_tflops : NAN;
        res.peak_mem_gib = NAN;
        /* train: params + grads + AdamW m, v + activations; infer: params + activations */
        double need = infer ? (double)pb + ab : 4.0 * pb + ab;
        printf("model %s: %.2fM params, L=%d, %s %d, batch %d, threads %d, %s, precision %s\n",
               mf.model, res.params_m, L, infer ? "tokens" : "visible", infer ? 1 + L : K,
               batch, mae_get_num_threads(),
               infer ? "encoder-only inference on all patches" : "training", prec_name);
        if (infer)
            printf("memory: params %.1f MB, activations %.1f MB (encoder %.1f MB for all %d "
                   "tokens)\n", pb / 1e6, ab / 1e6, eb / 1e6, 1 + L);
        else
            printf("memory: params %.1f MB, grads %.1f MB, adamw %.1f MB, activations %.1f MB "
                   "(encoder %.1f MB for %d of %d tokens)\n",
                   pb / 1e6, pb / 1e6, 2 * pb / 1e6, ab / 1e6, eb / 1e6, 1 + K, 1 + L);
        printf("bench: model=%s batch=%d threads=%d steps=%d img/s=%.2f ms/step=%.2f gflops=%.1f "
               "loss=%.4f pct_peak=%.1f mode=%s precision=%s rss_mb=%.0f buffers_mb=%.0f "
               "peak_gflops=%.1f\n",
               mf.model, batch, mae_get_num_threads(), steps, ips, 1e3 * dt / steps, gflops,
               (double)loss, pct, infer ? "infer" : "train", prec_name, rss / 1e6, need / 1e6,
               peak);
        printf("throughput: %.1f GFLOP/s = %.1f%% of sgemm peak %.1f GFLOP/s (%s)\n", gflops,
               pct, peak, infer ? "encoder forward on all tokens" : "3x forward matmul FLOPs");
        if (peak_tflops > 0)
            printf("mfu: %.1f%% of %.3f TFLOP/s (--peak_tflops)\n", 100 * res.mfu, peak_tflops);
        double ph[MAE_NUM_PHASES], in_phases = 0;
        mae_phase_seconds(m, ph);
        printf("phases (ms/step):");
        for (int k = 0; k < MAE_NUM_PHASES; k++) {
            if (infer && k != MAE_PHASE_ENCODER) continue;
            printf(" %s %.2f (%.0f%%)", mae_phase_name(k), 1e3 * ph[k] / steps,
                   100 * ph[k] / dt);
            in_phases += ph[k];
        }
        printf(" other %.2f (%.0f%%)\n", 1e3 * (dt - in_phases) / steps,
               100 * (dt - in_phases) / dt);
        printf("peak RSS: %.1f MB; %s: %.1f MB; RSS / that = %.2f", rss / 1e6,
               infer ? "params + activations" : "params + grads + adamw + activations",
               need / 1e6, rss / need);
        if (infer) /* not in the sum, but in the RSS (in train mode they are below the peak) */
            printf(" (RSS also holds the %.1f MB of gradients that mae_model_create allocates "
                   "and zeroes in any case, and mae_model_init's %.1f MB host copy of the "
                   "parameters, freed after init)",
                   pb / 1e6, pb / 1e6);
        if (measured && need < 3.0 * PEAK_N * PEAK_N * sizeof(float))
            printf(" (the SGEMM peak's %.0f MB, freed before the model was created, may have "
                   "set this high-water mark; --peak N skips it)",
                   3.0 * PEAK_N * PEAK_N * sizeof(float) / 1e6);
        printf("\n");
    }
    if (loss_window > 0)
        printf("loss: mean of the last %d steps %.6f (steps %d..%d of %d timed, seed %llu, "
               "synthetic %s, precision %s)\n",
               loss_window, loss_mean, steps - loss_window + 1, steps, steps,
               (unsigned long long)seed, synthetic, prec_name);
    if (gpu) {
        printf("RESULT ");
        json_write(stdout, &res);
        printf("\n");
    }
    fflush(stdout);
    int out_rc = 0;
    if (json) {
        FILE *f = fopen(json, "w");
        if (f) {
            json_write(f, &res);
            fprintf(f, "\n");
        }
        if (!f || fclose(f) != 0) {
            fprintf(stderr, "mae bench: cannot write --json '%s'\n", json);
            out_rc = 1;
        }
    }
    free(ids);
    if (gpu) {
        be->host_free(imgs);
        if (latent) be->host_free(latent);
    } else {
        free(imgs);
        free(latent);
    }
    free(noise);
    free(losses);
    mae_trainer_free(t);
    mae_model_free(m);
    return out_rc;
}
