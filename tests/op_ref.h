/* op_ref.h - naive double-precision reference implementations of the backend ops, written
 * straight from the math documented in src/backend.h (not from any backend's code). Used by
 * test_ops.c as the ground truth for forward results, analytic gradients and finite
 * differences.
 *
 * Unlike the backend, the reference backward functions OVERWRITE their outputs (they compute
 * the gradient itself); test_ops.c checks accumulation separately. Any gradient output may be
 * NULL. Shapes and layouts are exactly those of backend.h.
 */
#ifndef MAE_OP_REF_H
#define MAE_OP_REF_H

#include <stddef.h>
#include <stdint.h>

#define REF_LN_EPS 1e-6
#define REF_NORM_PIX_EPS 1e-6

/* out (M,N) = inp (M,K) @ w (N,K)^T + bias (N) (bias may be NULL) */
void ref_matmul_forward(double *out, const double *inp, const double *w, const double *bias,
                        int M, int K, int N);
void ref_matmul_backward(double *dinp, double *dw, double *dbias, const double *dout,
                         const double *inp, const double *w, int M, int K, int N);

/* LayerNorm over C, biased variance, eps REF_LN_EPS. mean/rstd may be NULL. */
void ref_layernorm_forward(double *out, double *mean, double *rstd, const double *inp,
                           const double *w, const double *b, int N, int C);
/* recomputes the statistics from inp */
void ref_layernorm_backward(double *dinp, double *dw, double *db, const double *dout,
                            const double *inp, const double *w, int N, int C);

double ref_gelu(double x);      /* x * Phi(x), exact erf form */
double ref_gelu_grad(double x); /* Phi(x) + x * phi(x) */

/* multi-head self attention: qkv (B,T,3C) = [q | k | v], head h in columns h*hd.. of each
 * part, scale hd^-0.5, softmax over keys. out (B,T,C), att (B,NH,T,T) (att may be NULL). */
void ref_attention_forward(double *out, double *att, const double *qkv, int B, int T, int C,
                           int NH);
/* dqkv (B,T,3C) = d(sum out*dout)/d qkv */
void ref_attention_backward(double *dqkv, const double *dout, const double *qkv, int B, int T,
                            int C, int NH);

/* cols (B,K,C*p*p), order (c,i,j), patch ids[b*K+k] (k when ids == NULL) */
void ref_im2patch(double *cols, const double *imgs, const int32_t *ids, int B, int C, int H,
                  int W, int p, int K);
/* target (B,L,p*p*C), order (i,j,c) */
void ref_patchify(double *target, const double *imgs, int B, int C, int H, int W, int p);

void ref_embed_tokens(double *x, const double *emb, const double *cls, const double *pos,
                      const int32_t *ids_keep, int B, int L, int K, int D);
void ref_embed_tokens_backward(double *demb, double *dcls, const double *dx, int B, int K,
                               int D);
void ref_unshuffle(double *y, const double *xd, const double *mask_token, const double *pos,
                   const int32_t *ids_restore, int B, int L, int K, int D);
void ref_unshuffle_backward(double *dxd, double *dmask_token, const double *dy,
                            const int32_t *ids_restore, int B, int L, int K, int D);

/* MAE loss; pred (B,1+L,P) with CLS row ignored. If dpred != NULL it is set to
 * dloss * dloss/dpred (CLS rows set to 0). Returns the loss (0 if sum(mask) == 0). */
double ref_mae_loss(double *dpred, const double *pred, const double *target, const double *mask,
                    int B, int L, int P, int norm_pix, double dloss);

/* one torch.optim.AdamW step in place on p, m, v */
void ref_adamw(double *p, const double *g, double *m, double *v, size_t n, double lr,
               double beta1, double beta2, double eps, double wd, double bc1, double bc2);

double ref_sumsq(const double *x, size_t n);

#endif
