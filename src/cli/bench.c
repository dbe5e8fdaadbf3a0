/* bench.c - `mae bench`: training throughput on synthetic input (like llama-bench), with the
 * time per phase (encoder, decoder, loss, backward, optimizer). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "rng.h"

int cmd_bench(int argc, char **argv) {
    cli_model_flags mf = {.model = "tiny-28"};
    int batch = 64, steps = 10, warmup = 2, threads = 0;
    arg_spec s[CLI_MODEL_NFLAGS + 4];
    cli_model_specs(s, &mf);
    arg_spec extra[4] = {
        {"batch_size", ARG_INT, &batch, "images per step (default 64)", 0},
        {"steps", ARG_INT, &steps, "timed training steps (default 10)", 0},
        {"warmup", ARG_INT, &warmup, "untimed steps first (default 2)", 0},
        {"threads", ARG_INT, &threads, "threads (default: all cores)", 0},
    };
    memcpy(s + CLI_MODEL_NFLAGS, extra, sizeof extra);
    int n = CLI_MODEL_NFLAGS + 4;
    mae_error err = {{0}};
    int rc = args_parse(s, n, argc, argv, 2, "bench", &err);
    if (rc == 1) {
        args_help(s, n, "bench", "Times MAE training steps (forward, backward, AdamW) on synthetic images.");
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
    if (threads > 0) mae_set_num_threads(threads);
    mae_model *m = mae_model_create(&cfg, batch, "cpu", &err);
    if (!m) {
        fprintf(stderr, "mae bench: %s\n", err.msg);
        return 1;
    }
    mae_model_init(m, 0);
    mae_train_config tc;
    mae_train_config_default(&tc);
    tc.batch_size = batch;
    tc.lr = 1e-4;
    tc.warmup_epochs = 0;
    mae_trainer *t = mae_trainer_create(m, &tc, &err);
    if (!t) {
        fprintf(stderr, "mae bench: %s\n", err.msg);
        mae_model_free(m);
        return 1;
    }
    size_t npix = (size_t)batch * cfg.in_chans * cfg.img_size * cfg.img_size;
    int L = mae_config_num_patches(&cfg);
    float *imgs = mae_xmalloc(npix * sizeof(float));
    float *noise = mae_xmalloc((size_t)batch * L * sizeof(float));
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
        for (int b = 0; b < batch; b++) ids[b] = (uint64_t)it * batch + b;
        mae_make_noise(noise, batch, L, 0, ids);
        if (mae_trainer_step(t, imgs, noise, batch, 1.0, &loss, &err) != MAE_OK) {
            fprintf(stderr, "mae bench: %s\n", err.msg);
            return 1;
        }
    }
    double dt = mae_clock() - t0;
    double ips = (double)batch * steps / dt;
    double gflops = 3.0 * cli_forward_flops(&cfg, mae_config_len_keep(&cfg)) * ips / 1e9;
    size_t pb, ab, eb, db;
    mae_model_memory(m, &pb, &ab, &eb, &db);
    printf("model %s: %.2fM params, L=%d, visible=%d, batch %d, threads %d\n", mf.model,
           mae_num_params(m, 1) / 1e6, L, mae_config_len_keep(&cfg), batch, mae_get_num_threads());
    printf("memory: params %.1f MB, grads %.1f MB, adamw %.1f MB, activations %.1f MB "
           "(encoder %.1f MB for %d of %d tokens)\n",
           pb / 1e6, pb / 1e6, 2 * pb / 1e6, ab / 1e6, eb / 1e6, 1 + mae_config_len_keep(&cfg), 1 + L);
    printf("bench: model=%s batch=%d threads=%d steps=%d img/s=%.2f ms/step=%.2f gflops=%.1f loss=%.4f\n",
           mf.model, batch, mae_get_num_threads(), steps, ips, 1e3 * dt / steps, gflops, (double)loss);
    double ph[MAE_NUM_PHASES], in_phases = 0;
    mae_phase_seconds(m, ph);
    printf("phases (ms/step):");
    for (int k = 0; k < MAE_NUM_PHASES; k++) {
        printf(" %s %.2f (%.0f%%)", mae_phase_name(k), 1e3 * ph[k] / steps, 100 * ph[k] / dt);
        in_phases += ph[k];
    }
    printf(" other %.2f (%.0f%%)\n", 1e3 * (dt - in_phases) / steps, 100 * (dt - in_phases) / dt);
    free(ids);
    free(imgs);
    free(noise);
    mae_trainer_free(t);
    mae_model_free(m);
    return 0;
}
