/* cpu.h - CPU backend kernels (OpenMP + CBLAS). Signatures and shapes are documented in
 * backend.h; this header only gathers them for the ops table in backend_cpu.c. */
#ifndef MAE_CPU_H
#define MAE_CPU_H

#include "backend.h"

/* Scratch memory owned by the backend, grown on first use and reused afterwards
 * (so nothing is allocated per step once the first step has run). slot < CPU_SCRATCH_SLOTS. */
#define CPU_SCRATCH_SLOTS 6
#define CPU_SCRATCH_GEMM_A 4 /* gemm.c: packed A (bf16) */
#define CPU_SCRATCH_GEMM_B 5 /* gemm.c: packed B panels */
void *cpu_scratch(int slot, size_t bytes);
int cpu_max_threads(void);

int cpu_has_precision(int prec);
void cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int M,
                        int K, int N, int prec);
void cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, int M, int K, int N, int prec);
void cpu_matmul_forward_gelu(float *pre, float *act, const float *inp, const float *w,
                             const float *bias, int M, int K, int N, int prec);
void cpu_matmul_backward_gelu(float *dpre, float *dw, float *dbias, const float *dout,
                              const float *act, const float *pre, const float *w, int M, int K,
                              int N, int prec);
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *w, const float *b, int N, int C, float eps);
void cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, const float *mean,
                            const float *rstd, int N, int C);
void cpu_gelu_forward(float *out, const float *inp, size_t n);
void cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void cpu_add(float *out, const float *a, const float *b, size_t n);
void cpu_add_inplace(float *acc, const float *x, size_t n);
void cpu_adamw(float *p, float *g, float *m, float *v, const mae_adamw_seg *segs, int nseg,
               float lr, float beta1, float beta2, float eps, float bc1, float bc2, int zero_grad);
double cpu_sumsq(const float *x, size_t n);

void cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                           int NH, int prec);
void cpu_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                            const float *att, const float *out, int B, int T, int C, int NH,
                            int prec);
size_t cpu_attention_state_floats(int B, int T, int C, int NH);

void cpu_im2patch(float *cols, const float *imgs, const int32_t *ids, int B, int C, int H,
                  int W, int p, int K);
void cpu_patchify(float *target, const float *imgs, int B, int C, int H, int W, int p);
void cpu_embed_tokens(float *x, const float *emb, const float *cls, const float *pos,
                      const int32_t *ids_keep, int B, int L, int K, int D);
void cpu_embed_tokens_backward(float *demb, float *dcls, const float *dx, int B, int K, int D);
void cpu_unshuffle(float *y, const float *xd, const float *mask_token, const float *pos,
                   const int32_t *ids_restore, int B, int L, int K, int D);
void cpu_unshuffle_backward(float *dxd, float *dmask_token, const float *dy,
                            const int32_t *ids_restore, int B, int L, int K, int D);
float cpu_mae_loss(float *dpred, const float *pred, const float *target, const float *mask,
                   int B, int L, int P, int norm_pix, float dloss);

/* ops_cls.c: classification and LARS */
void cpu_scale_rows(float *out, const float *in, const float *scale, int B, size_t n);
void cpu_pool_tokens(float *out, const float *x, int B, int T, int C, int mode);
void cpu_pool_tokens_backward(float *dx, const float *dout, int B, int T, int C, int mode);
void cpu_batchnorm_forward(float *out, float *run_mean, float *run_var, const float *x, int B,
                           int C, int train, float momentum, float eps);
float cpu_softmax_xent(float *dz, const float *z, const float *t, int B, int NC, float dloss);
void cpu_scale_inplace(float *x, float s, size_t n);
void cpu_lars(float *p, float *g, float *mu, const mae_adamw_seg *segs, int nseg, float lr,
              float momentum, float trust, int zero_grad);

#endif
