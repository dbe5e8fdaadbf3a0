/* backend.h - the ops table. Model code (src/model, src/train) is written once against this
 * table; src/cpu implements it with OpenMP and its own GEMM, and a GPU backend implements the
 * same.
 *
 * Conventions (as llm.c): outputs first, then inputs, then sizes. All float32. Pointers are
 * device pointers of the backend. Forward kernels overwrite their outputs. Backward kernels
 * ACCUMULATE (+=) into every gradient output; callers zero scratch buffers first. Two
 * exceptions, marked OVERWRITTEN below: matmul_backward_gelu's dpre and attention_backward's
 * dqkv (scratch gradients with one consumer).
 * gelu_forward/gelu_backward are the unfused GELU; the model itself now uses the fused matmul
 * ops (the CPU's fused forward evaluates the same expression), and only the op tests and
 * bench/kernel_bench call them.
 * Shape letters: B batch, T tokens, C channels, NH heads, hd = C/NH, L patches, K kept
 * patches, P = p*p*in_chans values per patch, H hidden (MLP) width.
 */
#ifndef MAE_BACKEND_H
#define MAE_BACKEND_H

#include <stddef.h>
#include <stdint.h>


/* MAE_PREC_FP32 / MAE_PREC_BF16 */
#include "mae.h"

/* a span of the flat parameter buffer (one tensor) and its optimizer settings: weight decay,
 * lr multiplier (layer-wise lr decay; 1 = none) and, for LARS, whether the trust ratio and
 * weight decay apply (official util/lars.py: tensors with ndim > 1) */
typedef struct mae_adamw_seg {
    size_t offset, n;
    float wd;
    float lr_scale;
    int lars_adapt;
} mae_adamw_seg;

/* pool_tokens modes */
enum { MAE_POOL_CLS = 0, MAE_POOL_MEAN = 1 };

typedef struct mae_backend {
    const char *name;

    /* ---- memory */
    void *(*alloc)(size_t bytes); /* NULL on failure */
    void (*free)(void *p);
    void (*upload)(void *dst, const void *src_host, size_t bytes);
    void (*download)(void *dst_host, const void *src, size_t bytes);
    void (*zero)(void *p, size_t bytes);
    /* page-locked host memory that upload/download can move asynchronously (CPU: plain
     * aligned memory); NULL on failure */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);
    /* wait until every queued op has finished (timing; a no-op on the CPU) */
    void (*sync)(void);
    /* high-water mark of the device bytes this backend holds (alloc plus its own scratch and
     * library workspaces); 0 where it is not tracked (CPU: the process RSS tells) */
    size_t (*mem_peak)(void);

    /* ---- dense layers. prec: MAE_PREC_FP32, or MAE_PREC_BF16 (operands rounded to bf16,
     * products accumulated in fp32) when has_precision says so. */
    int (*has_precision)(int prec);
    /* out (M,N) = inp (M,K) @ w (N,K)^T + bias (N) [bias may be NULL] */
    void (*matmul_forward)(float *out, const float *inp, const float *w, const float *bias,
                           int M, int K, int N, int prec);
    /* dinp (M,K) += dout (M,N) @ w (N,K); dw (N,K) += dout^T @ inp; dbias (N) += colsum(dout).
     * Any of dinp, dw, dbias may be NULL. */
    void (*matmul_backward)(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int M, int K, int N, int prec);
    /* The MLP's first layer with its GELU fused into the matmul:
     * pre (M,N) = inp (M,K) @ w (N,K)^T + bias (N); act (M,N) = gelu(pre). */
    void (*matmul_forward_gelu)(float *pre, float *act, const float *inp, const float *w,
                                const float *bias, int M, int K, int N, int prec);
    /* The MLP's second layer, out = act @ w^T + bias with act = gelu(pre), backward through
     * the GELU: dpre (M,K) = (dout (M,N) @ w (N,K)) * gelu'(pre) -- OVERWRITTEN, not
     * accumulated: it is the scratch gradient of an activation with one consumer, and writing
     * it saves zeroing it; dw (N,K) += dout^T @ act; dbias (N) += colsum(dout). */
    void (*matmul_backward_gelu)(float *dpre, float *dw, float *dbias, const float *dout,
                                 const float *act, const float *pre, const float *w, int M,
                                 int K, int N, int prec);

    /* ---- LayerNorm over the last dim, biased variance (as torch) */
    /* out (N,C), mean (N), rstd (N) <- inp (N,C), w (C), b (C); rstd = 1/sqrt(var + eps) */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C, float eps);
    /* dinp (N,C) +=, dw (C) +=, db (C) += */
    void (*layernorm_backward)(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C);

    /* ---- elementwise */
    /* exact GELU: x * 0.5 * (1 + erf(x / sqrt(2))) */
    void (*gelu_forward)(float *out, const float *inp, size_t n);
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n); /* += */
    void (*add)(float *out, const float *a, const float *b, size_t n);                /* out = a+b */
    void (*add_inplace)(float *acc, const float *x, size_t n);                        /* acc += x */

    /* ---- attention (multi-head self attention, no mask, scale hd^-0.5)
     * qkv (B,T,3C) holds q | k | v, each (NH, hd) head-major within C, as official qkv.
     * out (B,T,C); att: what the forward keeps for the backward, attention_state_floats()
     * floats. The CPU keeps the softmax probabilities (B,NH,T,T); a fused (flash) attention
     * keeps the log-sum-exp of each row (B,NH,T) and recomputes the probabilities. */
    size_t (*attention_state_floats)(int B, int T, int C, int NH);
    void (*attention_forward)(float *out, float *att, const float *qkv, int B, int T, int C,
                              int NH, int prec);
    /* dqkv (B,T,3C) is OVERWRITTEN, not accumulated (the scratch gradient of the qkv output,
     * whose one consumer is this op: writing saves zeroing 3x the residual width);
     * datt is scratch of attention_state_floats() floats (contents overwritten); att and out
     * are the forward's.
     * prec: as the dense layers (the CPU computes attention in fp32 either way; a GPU runs the
     * Q K^T and P V products in bf16 with fp32 accumulation). */
    void (*attention_backward)(float *dqkv, float *datt, const float *dout, const float *qkv,
                               const float *att, const float *out, int B, int T, int C, int NH,
                               int prec);

    /* ---- MAE-specific data movement */
    /* cols (B,K,C*p*p) <- imgs (B,C,H,W): patch ids[b*K+k] (or k if ids NULL, K == L) in the
     * conv-weight order (c, i, j), so a matmul with patch_embed.proj.weight viewed as
     * (D, C*p*p) equals the stride-p convolution. */
    void (*im2patch)(float *cols, const float *imgs, const int32_t *ids, int B, int C, int H,
                     int W, int p, int K);
    /* target (B,L,P) <- imgs (B,C,H,W) in the official patchify order (i, j, c). */
    void (*patchify)(float *target, const float *imgs, int B, int C, int H, int W, int p);
    /* x (B,1+K,D): x[b,0] = cls + pos[0]; x[b,1+k] = emb[b,k] + pos[1 + ids_keep[b,k]].
     * emb (B,K,D), cls (D), pos (1+L, D), ids_keep (B,K). */
    void (*embed_tokens)(float *x, const float *emb, const float *cls, const float *pos,
                         const int32_t *ids_keep, int B, int L, int K, int D);
    /* demb (B,K,D) += dx[:,1:]; dcls (D) += sum_b dx[b,0] */
    void (*embed_tokens_backward)(float *demb, float *dcls, const float *dx, int B, int K,
                                  int D);
    /* y (B,1+L,D): y[b,0] = xd[b,0] + pos[0]; for l < L, r = ids_restore[b,l]:
     * y[b,1+l] = (r < K ? xd[b,1+r] : mask_token) + pos[1+l]. xd (B,1+K,D). */
    void (*unshuffle)(float *y, const float *xd, const float *mask_token, const float *pos,
                      const int32_t *ids_restore, int B, int L, int K, int D);
    /* dxd (B,1+K,D) +=, dmask_token (D) += */
    void (*unshuffle_backward)(float *dxd, float *dmask_token, const float *dy,
                               const int32_t *ids_restore, int B, int L, int K, int D);

    /* ---- loss. pred (B,1+L,P) (row 0 of each sample is the CLS row, ignored), target (B,L,P),
     * mask (B,L) 1 = removed. norm_pix: target -> (t - mean) / sqrt(var_unbiased + 1e-6) per
     * patch. loss = sum_bl mask * mean_p (pred - t)^2 / sum_bl mask (0 if no patch removed).
     * If dpred (B,1+L,P) is not NULL, dpred += dloss * d(loss)/d(pred). Returns the loss. */
    float (*mae_loss)(float *dpred, const float *pred, const float *target, const float *mask,
                      int B, int L, int P, int norm_pix, float dloss);

    /* ---- classification (fine-tuning, linear probing) */
    /* out[b*n + i] = in[b*n + i] * scale[b] (out may equal in): drop_path's per-sample scale */
    void (*scale_rows)(float *out, const float *in, const float *scale, int B, size_t n);
    /* out (B,C) <- x (B,T,C): MAE_POOL_CLS x[b,0]; MAE_POOL_MEAN mean of x[b,1..T-1] */
    void (*pool_tokens)(float *out, const float *x, int B, int T, int C, int mode);
    /* dx (B,T,C) += the gradient of pool_tokens for dout (B,C) */
    void (*pool_tokens_backward)(float *dx, const float *dout, int B, int T, int C, int mode);
    /* BatchNorm1d(affine=False): out (B,C) = (x - mu) / sqrt(var + eps). train: mu and the
     * biased var of the batch, then run_mean/run_var (C) = (1-momentum) run + momentum * stat
     * (var unbiased, as torch); else the running stats. No backward: its input is frozen. */
    void (*batchnorm_forward)(float *out, float *run_mean, float *run_var, const float *x, int B,
                              int C, int train, float momentum, float eps);
    /* soft-target cross entropy: loss = mean_b sum_c -t[b,c] log softmax(z[b])_c, z, t (B,NC).
     * If dz (B,NC) is not NULL it is OVERWRITTEN with dloss * dloss/dz. Returns the loss. */
    float (*softmax_xent)(float *dz, const float *z, const float *t, int B, int NC, float dloss);
    /* x (n) *= s (gradient clipping) */
    void (*scale_inplace)(float *x, float s, size_t n);

    /* ---- optimizer. torch.optim.AdamW semantics, per element of each segment (wd and
     * lr = lr * lr_scale its own):
     * p -= lr*wd*p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
     * p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), bc = 1 - beta^step.
     * One call updates every segment of the flat buffers p, g, m, v (offsets in floats), in one
     * parallel pass; with zero_grad, g is set to 0 once used (the next step's zero_grad, fused:
     * the gradient is not read again). Elements outside the segments are not touched. */
    void (*adamw)(float *p, float *g, float *m, float *v, const mae_adamw_seg *segs, int nseg,
                  float lr, float beta1, float beta2, float eps, float bc1, float bc2,
                  int zero_grad);
    /* LARS (official util/lars.py), per segment s with lr_s = lr * lr_scale: if lars_adapt,
     * u = g + wd p and q = trust * |p| / |u| (q = 1 when |p| or |u| is 0), else u = g, q = 1;
     * mu = momentum * mu + q u; p -= lr_s * mu. zero_grad as adamw. */
    void (*lars)(float *p, float *g, float *mu, const mae_adamw_seg *segs, int nseg, float lr,
                 float momentum, float trust, int zero_grad);
    /* returns sum of squares of x (n), computed in double; used for finite checks / grad norm */
    double (*sumsq)(const float *x, size_t n);
} mae_backend;

/* Backends compiled in. */
const mae_backend *mae_backend_cpu(void);
#ifdef MAE_HAVE_CUDA
/* the CUDA backend (src/cuda), or NULL with why (size n) filled when this machine has no
 * usable CUDA device */
const mae_backend *mae_backend_cuda(char *why, size_t n);
#endif
/* Look a backend up by name ("cpu", "cuda"); NULL if unknown, not compiled in, or (cuda) no
 * device: then why (size n, may be NULL) says which of these it is, naming the device. */
const mae_backend *mae_backend_find(const char *name, char *why, size_t n);
/* mae_backend_find without the reason */
const mae_backend *mae_backend_get(const char *name);

#endif
