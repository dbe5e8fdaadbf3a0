/* bench.c - `mae bench`: throughput on synthetic input (like llama-bench). --mode train times
 * training steps (forward, backward, AdamW) with the time per phase (encoder, decoder, loss,
 * backward, optimizer); --mode infer times encoder-only inference on all patches
 * (mae_forward_encoder). Both report img/s, achieved GFLOP/s, its share of a measured SGEMM
 * peak, and the peak RSS against the model's own buffers. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include <cblas.h>

#include "cli.h"
#include "common.h"
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

int cmd_bench(int argc, char **argv) {
    cli_model_flags mf = {.model = "tiny-28"};
    int batch = 64, steps = 10, warmup = 2, threads = 0;
    const char *mode = "train", *precision = "fp32";
    double peak = 0;
    enum { NEXTRA = 7 };
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
                                           "(bf16 needs AVX512_BF16) (default fp32)", 0},
        {"peak", ARG_DOUBLE, &peak,
         "GFLOP/s that pct_peak (% of peak) refers to; 0 measures cblas_sgemm on 2048^3 at "
         "--threads first (default 0)", 0},
    };
    memcpy(s + CLI_MODEL_NFLAGS, extra, sizeof extra);
    int n = CLI_MODEL_NFLAGS + NEXTRA;
    mae_error err = {{0}};
    int rc = args_parse(s, n, argc, argv, 2, "bench", &err);
    if (rc == 1) {
        args_help(s, n, "bench",
                  "Times MAE training steps (--mode train) or encoder-only inference (--mode "
                  "infer) on synthetic images. Prints img/s, ms/step by phase, achieved GFLOP/s "
                  "and its % of a measured SGEMM peak, and the peak RSS.");
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
    if (threads > 0) mae_set_num_threads(threads);
    /* The SGEMM peak runs BEFORE the model exists and frees its 48 MiB before the model is
     * created: ru_maxrss is a high-water mark, so measuring later would add the SGEMM buffers to
     * the model's own peak. Measured first, they can only set the mark for models needing less
     * than ~48 MiB in all (tiny ones); the RSS line says so when that can be the case. */
    int measured = peak == 0;
    if (measured) {
        peak = measure_sgemm_peak();
        printf("sgemm peak: %.1f GFLOP/s (%d^3, %d threads)\n", peak, PEAK_N,
               mae_get_num_threads());
    } else {
        printf("sgemm peak: %.1f GFLOP/s (given by --peak)\n", peak);
    }
    fflush(stdout);

    int L = mae_config_num_patches(&cfg);
    if (infer) cfg.mask_ratio = 0.0; /* the encoder then holds all 1+L tokens */
    mae_model *m = mae_model_create(&cfg, batch, "cpu", &err);
    if (!m) {
        fprintf(stderr, "mae bench: %s\n", err.msg);
        return 1;
    }
    if (mae_model_set_precision(m, precision, &err) != MAE_OK) {
        fprintf(stderr, "mae bench: %s\n", err.msg);
        mae_model_free(m);
        return 2;
    }
    mae_model_init(m, 0);
    mae_trainer *t = NULL;
    if (!infer) {
        mae_train_config tc;
        mae_train_config_default(&tc);
        tc.batch_size = batch;
        tc.lr = 1e-4;
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
    float *imgs = mae_xmalloc(npix * sizeof(float));
    float *noise = infer ? NULL : mae_xmalloc((size_t)batch * L * sizeof(float));
    float *latent = infer ? mae_xmalloc((size_t)batch * (1 + L) * D * sizeof(float)) : NULL;
    mae_rng r;
    mae_rng_seed(&r, 1);
    for (size_t i = 0; i < npix; i++) imgs[i] = (float)mae_rng_normal(&r);
    double t0 = 0;
    float loss = 0;
    uint64_t *ids = mae_xmalloc(sizeof(uint64_t) * batch);
    for (int it = 0; it < warmup + steps; it++) {
        if (it == warmup) {
            t0 = mae_clock();
            mae_phase_reset(m);
        }
        if (infer) {
            rc = mae_forward_encoder(m, imgs, batch, latent, &err);
        } else {
            for (int b = 0; b < batch; b++) ids[b] = (uint64_t)it * batch + b;
            mae_make_noise(noise, batch, L, 0, ids);
            rc = mae_trainer_step(t, imgs, noise, batch, 1.0, &loss, &err);
        }
        if (rc != MAE_OK) {
            fprintf(stderr, "mae bench: %s\n", err.msg);
            return 1;
        }
    }
    double dt = mae_clock() - t0;
    double rss = peak_rss_bytes();
    double ips = (double)batch * steps / dt;
    /* a training step ~ 3x the forward matmul FLOPs; inference is the encoder forward alone */
    double flops = infer ? cli_encoder_flops(&cfg) : 3.0 * cli_forward_flops(&cfg, K);
    double gflops = flops * ips / 1e9, pct = 100.0 * gflops / peak;
    size_t pb, ab, eb, db;
    mae_model_memory(m, &pb, &ab, &eb, &db);
    /* train: params + grads + AdamW m, v + activations; infer: params + activations */
    double need = infer ? (double)pb + ab : 4.0 * pb + ab;
    const char *prec_name = mae_model_precision(m) == MAE_PREC_BF16 ? "bf16" : "fp32";
    printf("model %s: %.2fM params, L=%d, %s %d, batch %d, threads %d, %s, precision %s\n",
           mf.model, mae_num_params(m, 1) / 1e6, L, infer ? "tokens" : "visible",
           infer ? 1 + L : K, batch, mae_get_num_threads(),
           infer ? "encoder-only inference on all patches" : "training", prec_name);
    if (infer)
        printf("memory: params %.1f MB, activations %.1f MB (encoder %.1f MB for all %d tokens)\n",
               pb / 1e6, ab / 1e6, eb / 1e6, 1 + L);
    else
        printf("memory: params %.1f MB, grads %.1f MB, adamw %.1f MB, activations %.1f MB "
               "(encoder %.1f MB for %d of %d tokens)\n",
               pb / 1e6, pb / 1e6, 2 * pb / 1e6, ab / 1e6, eb / 1e6, 1 + K, 1 + L);
    printf("bench: model=%s batch=%d threads=%d steps=%d img/s=%.2f ms/step=%.2f gflops=%.1f "
           "loss=%.4f pct_peak=%.1f mode=%s precision=%s rss_mb=%.0f buffers_mb=%.0f "
           "peak_gflops=%.1f\n",
           mf.model, batch, mae_get_num_threads(), steps, ips, 1e3 * dt / steps, gflops,
           (double)loss, pct, infer ? "infer" : "train", prec_name, rss / 1e6, need / 1e6, peak);
    printf("throughput: %.1f GFLOP/s = %.1f%% of sgemm peak %.1f GFLOP/s (%s)\n", gflops, pct,
           peak, infer ? "encoder forward on all tokens" : "3x forward matmul FLOPs");
    double ph[MAE_NUM_PHASES], in_phases = 0;
    mae_phase_seconds(m, ph);
    printf("phases (ms/step):");
    for (int k = 0; k < MAE_NUM_PHASES; k++) {
        if (infer && k != MAE_PHASE_ENCODER) continue;
        printf(" %s %.2f (%.0f%%)", mae_phase_name(k), 1e3 * ph[k] / steps, 100 * ph[k] / dt);
        in_phases += ph[k];
    }
    printf(" other %.2f (%.0f%%)\n", 1e3 * (dt - in_phases) / steps, 100 * (dt - in_phases) / dt);
    printf("peak RSS: %.1f MB; %s: %.1f MB; RSS / that = %.2f", rss / 1e6,
           infer ? "params + activations" : "params + grads + adamw + activations", need / 1e6,
           rss / need);
    if (infer) /* not in the sum, but in the RSS (in train mode they are below the peak) */
        printf(" (RSS also holds the %.1f MB of gradients that mae_model_create allocates and "
               "zeroes in any case, and mae_model_init's %.1f MB host copy of the parameters, "
               "freed after init)",
               pb / 1e6, pb / 1e6);
    if (measured && need < 3.0 * PEAK_N * PEAK_N * sizeof(float))
        printf(" (the SGEMM peak's %.0f MB, freed before the model was created, may have set "
               "this high-water mark; --peak N skips it)",
               3.0 * PEAK_N * PEAK_N * sizeof(float) / 1e6);
    printf("\n");
    free(ids);
    free(imgs);
    free(noise);
    free(latent);
    mae_trainer_free(t);
    mae_model_free(m);
    return 0;
}
