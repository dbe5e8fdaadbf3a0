/* profile.cu - MAE_CUDA_PROFILE=1: the ops table wrapped so that each call is timed on the
 * device (CUDA events around it, waited for at once: the queue drains after every op, so the
 * step runs slower, but each op's time is its own). At exit a table of calls, total and mean
 * milliseconds per op, sorted by total, goes to stderr. For finding where a step's time goes
 * on a lent GPU in one run. */
#include <string.h>

#include "cuda_common.cuh"

enum {
    P_MM_F, P_MM_B, P_MM_FG, P_MM_BG, P_LN_F, P_LN_B, P_GELU_F, P_GELU_B, P_ADD, P_ADDI,
    P_ATT_F, P_ATT_B, P_IM2P, P_PATCH, P_EMB, P_EMB_B, P_UNSH, P_UNSH_B, P_LOSS, P_SROWS,
    P_POOL, P_POOL_B, P_BN, P_XENT, P_SCALE, P_ADAMW, P_LARS, P_SUMSQ, P_ZERO, P_UP, P_DOWN,
    P_N
};
static const char *g_pname[P_N] = {
    "matmul_forward", "matmul_backward", "matmul_forward_gelu", "matmul_backward_gelu",
    "layernorm_forward", "layernorm_backward", "gelu_forward", "gelu_backward", "add",
    "add_inplace", "attention_forward", "attention_backward", "im2patch", "patchify",
    "embed_tokens", "embed_tokens_backward", "unshuffle", "unshuffle_backward", "mae_loss",
    "scale_rows", "pool_tokens", "pool_tokens_backward", "batchnorm_forward", "softmax_xent",
    "scale_inplace", "adamw", "lars", "sumsq", "zero", "upload", "download"};
static double g_ms[P_N];
static long g_calls[P_N];
static cudaEvent_t g_e0, g_e1;
static const mae_backend *g_inner;

static void pbegin(void) { CUDA_CHECK(cudaEventRecord(g_e0, 0)); }
static void pend(int id) {
    CUDA_CHECK(cudaEventRecord(g_e1, 0));
    CUDA_CHECK(cudaEventSynchronize(g_e1));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, g_e0, g_e1));
    g_ms[id] += ms;
    g_calls[id]++;
}
#define TIMED(id, call)                                                                       \
    do {                                                                                      \
        pbegin();                                                                             \
        call;                                                                                 \
        pend(id);                                                                             \
    } while (0)
#define TIMED_RET(id, T, call)                                                                \
    do {                                                                                      \
        pbegin();                                                                             \
        T r_ = call;                                                                          \
        pend(id);                                                                             \
        return r_;                                                                            \
    } while (0)

static void report(void) {
    int order[P_N];
    double total = 0.0;
    for (int i = 0; i < P_N; i++) order[i] = i, total += g_ms[i];
    for (int i = 1; i < P_N; i++) /* insertion sort by total, descending */
        for (int j = i; j > 0 && g_ms[order[j]] > g_ms[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    fprintf(stderr, "MAE_CUDA_PROFILE: device time per op (all calls of the run)\n");
    fprintf(stderr, "  %-24s %8s %11s %9s %6s\n", "op", "calls", "total ms", "mean ms", "share");
    for (int k = 0; k < P_N; k++) {
        int i = order[k];
        if (!g_calls[i]) continue;
        fprintf(stderr, "  %-24s %8ld %11.2f %9.4f %5.1f%%\n", g_pname[i], g_calls[i], g_ms[i],
                g_ms[i] / g_calls[i], total > 0 ? 100.0 * g_ms[i] / total : 0.0);
    }
    fprintf(stderr, "  %-24s %8s %11.2f\n", "all", "", total);
}

static void w_upload(void *d, const void *s, size_t n) { TIMED(P_UP, g_inner->upload(d, s, n)); }
static void w_download(void *d, const void *s, size_t n) {
    TIMED(P_DOWN, g_inner->download(d, s, n));
}
static void w_zero(void *p, size_t n) { TIMED(P_ZERO, g_inner->zero(p, n)); }
static void w_mm_f(float *o, const float *i, const float *w, const float *b, int M, int K, int N,
                   int p) {
    TIMED(P_MM_F, g_inner->matmul_forward(o, i, w, b, M, K, N, p));
}
static void w_mm_b(float *di, float *dw, float *db, const float *g, const float *i,
                   const float *w, int M, int K, int N, int p) {
    TIMED(P_MM_B, g_inner->matmul_backward(di, dw, db, g, i, w, M, K, N, p));
}
static void w_mm_fg(float *pre, float *act, const float *i, const float *w, const float *b,
                    int M, int K, int N, int p) {
    TIMED(P_MM_FG, g_inner->matmul_forward_gelu(pre, act, i, w, b, M, K, N, p));
}
static void w_mm_bg(float *dp, float *dw, float *db, const float *g, const float *act,
                    const float *pre, const float *w, int M, int K, int N, int p) {
    TIMED(P_MM_BG, g_inner->matmul_backward_gelu(dp, dw, db, g, act, pre, w, M, K, N, p));
}
static void w_ln_f(float *o, float *m, float *r, const float *i, const float *w, const float *b,
                   int N, int C, float eps) {
    TIMED(P_LN_F, g_inner->layernorm_forward(o, m, r, i, w, b, N, C, eps));
}
static void w_ln_b(float *di, float *dw, float *db, const float *g, const float *i,
                   const float *w, const float *m, const float *r, int N, int C) {
    TIMED(P_LN_B, g_inner->layernorm_backward(di, dw, db, g, i, w, m, r, N, C));
}
static void w_gelu_f(float *o, const float *i, size_t n) { TIMED(P_GELU_F, g_inner->gelu_forward(o, i, n)); }
static void w_gelu_b(float *d, const float *i, const float *g, size_t n) {
    TIMED(P_GELU_B, g_inner->gelu_backward(d, i, g, n));
}
static void w_add(float *o, const float *a, const float *b, size_t n) { TIMED(P_ADD, g_inner->add(o, a, b, n)); }
static void w_addi(float *a, const float *x, size_t n) { TIMED(P_ADDI, g_inner->add_inplace(a, x, n)); }
static void w_att_f(float *o, float *a, const float *q, int B, int T, int C, int NH, int p) {
    TIMED(P_ATT_F, g_inner->attention_forward(o, a, q, B, T, C, NH, p));
}
static void w_att_b(float *dq, float *da, const float *g, const float *q, const float *a,
                    const float *o, int B, int T, int C, int NH, int p) {
    TIMED(P_ATT_B, g_inner->attention_backward(dq, da, g, q, a, o, B, T, C, NH, p));
}
static void w_im2p(float *c, const float *im, const int32_t *ids, int B, int C, int H, int W,
                   int p, int K) {
    TIMED(P_IM2P, g_inner->im2patch(c, im, ids, B, C, H, W, p, K));
}
static void w_patch(float *t, const float *im, int B, int C, int H, int W, int p) {
    TIMED(P_PATCH, g_inner->patchify(t, im, B, C, H, W, p));
}
static void w_emb(float *x, const float *e, const float *c, const float *pos, const int32_t *ids,
                  int B, int L, int K, int D) {
    TIMED(P_EMB, g_inner->embed_tokens(x, e, c, pos, ids, B, L, K, D));
}
static void w_emb_b(float *de, float *dc, const float *dx, int B, int K, int D) {
    TIMED(P_EMB_B, g_inner->embed_tokens_backward(de, dc, dx, B, K, D));
}
static void w_unsh(float *y, const float *xd, const float *mt, const float *pos,
                   const int32_t *ids, int B, int L, int K, int D) {
    TIMED(P_UNSH, g_inner->unshuffle(y, xd, mt, pos, ids, B, L, K, D));
}
static void w_unsh_b(float *dxd, float *dm, const float *dy, const int32_t *ids, int B, int L,
                     int K, int D) {
    TIMED(P_UNSH_B, g_inner->unshuffle_backward(dxd, dm, dy, ids, B, L, K, D));
}
static float w_loss(float *dp, const float *p, const float *t, const float *m, int B, int L,
                    int P, int np, float dl) {
    TIMED_RET(P_LOSS, float, g_inner->mae_loss(dp, p, t, m, B, L, P, np, dl));
}
static void w_srows(float *o, const float *i, const float *s, int B, size_t n) {
    TIMED(P_SROWS, g_inner->scale_rows(o, i, s, B, n));
}
static void w_pool(float *o, const float *x, int B, int T, int C, int mode) {
    TIMED(P_POOL, g_inner->pool_tokens(o, x, B, T, C, mode));
}
static void w_pool_b(float *dx, const float *g, int B, int T, int C, int mode) {
    TIMED(P_POOL_B, g_inner->pool_tokens_backward(dx, g, B, T, C, mode));
}
static void w_bn(float *o, float *rm, float *rv, const float *x, int B, int C, int train,
                 float mom, float eps) {
    TIMED(P_BN, g_inner->batchnorm_forward(o, rm, rv, x, B, C, train, mom, eps));
}
static float w_xent(float *dz, const float *z, const float *t, int B, int NC, float dl) {
    TIMED_RET(P_XENT, float, g_inner->softmax_xent(dz, z, t, B, NC, dl));
}
static void w_scale(float *x, float s, size_t n) { TIMED(P_SCALE, g_inner->scale_inplace(x, s, n)); }
static void w_adamw(float *p, float *g, float *m, float *v, const mae_adamw_seg *s, int ns,
                    float lr, float b1, float b2, float eps, float bc1, float bc2, int zg) {
    TIMED(P_ADAMW, g_inner->adamw(p, g, m, v, s, ns, lr, b1, b2, eps, bc1, bc2, zg));
}
static void w_lars(float *p, float *g, float *mu, const mae_adamw_seg *s, int ns, float lr,
                   float mom, float tr, int zg) {
    TIMED(P_LARS, g_inner->lars(p, g, mu, s, ns, lr, mom, tr, zg));
}
static double w_sumsq(const float *x, size_t n) { TIMED_RET(P_SUMSQ, double, g_inner->sumsq(x, n)); }

static mae_backend g_prof;

const mae_backend *cu_profiled(const mae_backend *inner) {
    g_inner = inner;
    g_prof = *inner; /* memory, sync, sizes: as they are */
    CUDA_CHECK(cudaEventCreate(&g_e0));
    CUDA_CHECK(cudaEventCreate(&g_e1));
    g_prof.upload = w_upload;
    g_prof.download = w_download;
    g_prof.zero = w_zero;
    g_prof.matmul_forward = w_mm_f;
    g_prof.matmul_backward = w_mm_b;
    g_prof.matmul_forward_gelu = w_mm_fg;
    g_prof.matmul_backward_gelu = w_mm_bg;
    g_prof.layernorm_forward = w_ln_f;
    g_prof.layernorm_backward = w_ln_b;
    g_prof.gelu_forward = w_gelu_f;
    g_prof.gelu_backward = w_gelu_b;
    g_prof.add = w_add;
    g_prof.add_inplace = w_addi;
    g_prof.attention_forward = w_att_f;
    g_prof.attention_backward = w_att_b;
    g_prof.im2patch = w_im2p;
    g_prof.patchify = w_patch;
    g_prof.embed_tokens = w_emb;
    g_prof.embed_tokens_backward = w_emb_b;
    g_prof.unshuffle = w_unsh;
    g_prof.unshuffle_backward = w_unsh_b;
    g_prof.mae_loss = w_loss;
    g_prof.scale_rows = w_srows;
    g_prof.pool_tokens = w_pool;
    g_prof.pool_tokens_backward = w_pool_b;
    g_prof.batchnorm_forward = w_bn;
    g_prof.softmax_xent = w_xent;
    g_prof.scale_inplace = w_scale;
    g_prof.adamw = w_adamw;
    g_prof.lars = w_lars;
    g_prof.sumsq = w_sumsq;
    atexit(report);
    return &g_prof;
}
