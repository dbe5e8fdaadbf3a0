/* ops_flash.cu - fused (flash) attention: the probabilities are never stored; the forward
 * keeps the log-sum-exp of each row of scaled scores, lse (B,NH,T), and the backward recomputes
 * the probabilities from it (FlashAttention, Dao et al.). q, k, v are read straight from qkv
 * (B,T,3C) and the output written straight to (B,T,C): no head split copies.
 *
 * fp32 (MAE_PREC_FP32, the parity path): one thread per row on the CUDA cores.
 * bf16 (MAE_PREC_BF16): tensor cores through wmma (16x16x16 bf16 -> fp32), 64-row tiles, four
 * warps of 16 rows per block; q, k, v, dout, P and dS are rounded to bf16, scores, softmax
 * statistics and accumulators are fp32.
 * The backward is deterministic: dK, dV per key tile and dQ per query tile in two kernels, each
 * recomputing the scores (no atomics). D = rowsum(dout * out) goes to the datt scratch.
 * Head dims: multiples of 16 up to 128 (cu_flash_supported). */
#include <cuda_bf16.h>
#include <mma.h>

#include "cuda_common.cuh"

using namespace nvcuda;

int cu_flash_supported(int hd) { return hd >= 16 && hd <= 128 && hd % 16 == 0; }

#define QKV_ROW(b, t) (((size_t)(b) * T + (t)) * 3 * C)

/* ------------------------------------------------------------------ fp32, one thread per row */

template <int HD>
__global__ void k_flash_f32_fwd(float *out, float *lse, const float *qkv, int B, int T, int C,
                                int NH, float scale) {
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * NH * T) return;
    int t = (int)(idx % T);
    size_t bh = idx / T;
    int h = (int)(bh % NH), b = (int)(bh / NH);
    const float *qp = qkv + QKV_ROW(b, t) + (size_t)h * HD;
    float q[HD], o[HD];
#pragma unroll
    for (int d = 0; d < HD; d++) {
        q[d] = qp[d];
        o[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int s = 0; s < T; s++) {
        const float *kp = qkv + QKV_ROW(b, s) + C + (size_t)h * HD, *vp = kp + C;
        float dot = 0.0f;
#pragma unroll
        for (int d = 0; d < HD; d++) dot += q[d] * kp[d];
        dot *= scale;
        float mn = fmaxf(m, dot), corr = expf(m - mn), p = expf(dot - mn);
        l = l * corr + p;
#pragma unroll
        for (int d = 0; d < HD; d++) o[d] = o[d] * corr + p * vp[d];
        m = mn;
    }
    float inv = 1.0f / l;
    float *op = out + ((size_t)b * T + t) * C + (size_t)h * HD;
#pragma unroll
    for (int d = 0; d < HD; d++) op[d] = o[d] * inv;
    lse[idx] = m + logf(l);
}

/* D (B,NH,T) = rowsum(dout * out) per head */
__global__ void k_flash_delta(float *D, const float *dout, const float *out, int B, int T, int C,
                              int NH) {
    size_t row = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32, hd = C / NH;
    if (row >= (size_t)B * NH * T) return;
    int t = (int)(row % T);
    size_t bh = row / T;
    int h = (int)(bh % NH), b = (int)(bh / NH);
    size_t o = ((size_t)b * T + t) * C + (size_t)h * hd;
    float s = 0.0f;
    for (int d = lane; d < hd; d += 32) s += dout[o + d] * out[o + d];
    s = warp_sum(s);
    if (lane == 0) D[row] = s;
}

/* dq for one query row per thread */
template <int HD>
__global__ void k_flash_f32_dq(float *dqkv, const float *dout, const float *qkv,
                               const float *lse, const float *D, int B, int T, int C, int NH,
                               float scale) {
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * NH * T) return;
    int t = (int)(idx % T);
    size_t bh = idx / T;
    int h = (int)(bh % NH), b = (int)(bh / NH);
    const float *qp = qkv + QKV_ROW(b, t) + (size_t)h * HD;
    const float *gp = dout + ((size_t)b * T + t) * C + (size_t)h * HD;
    float q[HD], g[HD], dq[HD];
#pragma unroll
    for (int d = 0; d < HD; d++) {
        q[d] = qp[d];
        g[d] = gp[d];
        dq[d] = 0.0f;
    }
    float L = lse[idx], Dt = D[idx];
    for (int s = 0; s < T; s++) {
        const float *kp = qkv + QKV_ROW(b, s) + C + (size_t)h * HD, *vp = kp + C;
        float dot = 0.0f, dp = 0.0f;
#pragma unroll
        for (int d = 0; d < HD; d++) {
            dot += q[d] * kp[d];
            dp += g[d] * vp[d];
        }
        float p = expf(dot * scale - L), ds = p * (dp - Dt);
#pragma unroll
        for (int d = 0; d < HD; d++) dq[d] += ds * kp[d];
    }
    float *dst = dqkv + QKV_ROW(b, t) + (size_t)h * HD;
#pragma unroll
    for (int d = 0; d < HD; d++) dst[d] = dq[d] * scale;
}

/* dk, dv for one key row per thread */
template <int HD>
__global__ void k_flash_f32_dkv(float *dqkv, const float *dout, const float *qkv,
                                const float *lse, const float *D, int B, int T, int C, int NH,
                                float scale) {
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * NH * T) return;
    int s = (int)(idx % T);
    size_t bh = idx / T;
    int h = (int)(bh % NH), b = (int)(bh / NH);
    const float *kp = qkv + QKV_ROW(b, s) + C + (size_t)h * HD, *vp = kp + C;
    float k[HD], v[HD], dk[HD], dv[HD];
#pragma unroll
    for (int d = 0; d < HD; d++) {
        k[d] = kp[d];
        v[d] = vp[d];
        dk[d] = 0.0f;
        dv[d] = 0.0f;
    }
    for (int t = 0; t < T; t++) {
        const float *qp = qkv + QKV_ROW(b, t) + (size_t)h * HD;
        const float *gp = dout + ((size_t)b * T + t) * C + (size_t)h * HD;
        size_t r = bh * T + t;
        float dot = 0.0f, dp = 0.0f;
#pragma unroll
        for (int d = 0; d < HD; d++) {
            dot += qp[d] * k[d];
            dp += gp[d] * v[d];
        }
        float p = expf(dot * scale - lse[r]), ds = p * (dp - D[r]);
#pragma unroll
        for (int d = 0; d < HD; d++) {
            dv[d] += p * gp[d];
            dk[d] += ds * qp[d];
        }
    }
    float *dst = dqkv + QKV_ROW(b, s) + C + (size_t)h * HD;
#pragma unroll
    for (int d = 0; d < HD; d++) {
        dst[d] = dk[d] * scale;
        dst[C + d] = dv[d];
    }
}

/* ------------------------------------------------------------------ bf16, tensor cores */

#define FT 64       /* rows per tile (queries or keys) */
#define FW 4        /* warps per block, 16 rows each */
#define SLD (FT + 4) /* float score tile row stride */
#define PLD (FT + 8) /* bf16 probability tile row stride */

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> frag_a;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> frag_br;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> frag_bc;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> frag_c;

/* dst (FT, HD+8) bf16 <- rows r0.. of a (B,T,*) tensor at base + row*rstride + col0, zero
 * beyond T; all threads of the block */
template <int HD>
__device__ void load_tile(__nv_bfloat16 *dst, const float *base, size_t rstride, int r0, int T) {
    for (int i = threadIdx.x; i < FT * HD; i += blockDim.x) {
        int r = i / HD, d = i % HD, t = r0 + r;
        dst[r * (HD + 8) + d] = __float2bfloat16_rn(t < T ? base[(size_t)t * rstride + d] : 0.0f);
    }
}

/* S (16, FT) float at ldS = A (16, HD) rows of As (ld HD+8) times Bs^T (Bs: FT rows, ld HD+8) */
template <int HD>
__device__ void mm_abt(float *S, const __nv_bfloat16 *As, const __nv_bfloat16 *Bs) {
#pragma unroll
    for (int j = 0; j < FT / 16; j++) {
        frag_c c;
        wmma::fill_fragment(c, 0.0f);
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            frag_a a;
            frag_bc bm;
            wmma::load_matrix_sync(a, As + kk * 16, HD + 8);
            wmma::load_matrix_sync(bm, Bs + (size_t)j * 16 * (HD + 8) + kk * 16, HD + 8);
            wmma::mma_sync(c, a, bm, c);
        }
        wmma::store_matrix_sync(S + j * 16, c, SLD, wmma::mem_row_major);
    }
}

/* acc[j] (16, 16 cols j) += P (16, FT) bf16 (ld PLD) times Vs (FT, HD) (ld HD+8) */
template <int HD>
__device__ void mm_pv(frag_c *acc, const __nv_bfloat16 *P, const __nv_bfloat16 *Vs) {
#pragma unroll
    for (int j = 0; j < HD / 16; j++)
#pragma unroll
        for (int kk = 0; kk < FT / 16; kk++) {
            frag_a a;
            frag_br bm;
            wmma::load_matrix_sync(a, P + kk * 16, PLD);
            wmma::load_matrix_sync(bm, Vs + (size_t)kk * 16 * (HD + 8) + j * 16, HD + 8);
            wmma::mma_sync(acc[j], a, bm, acc[j]);
        }
}

template <int HD>
static size_t fwd_smem() {
    return sizeof(__nv_bfloat16) * 3 * FT * (HD + 8) + sizeof(float) * FW * 16 * SLD +
           sizeof(__nv_bfloat16) * FW * 16 * PLD + sizeof(float) * FW * 16 * (HD + 4);
}

/* grid (ceil(T/FT), B*NH), FW warps */
template <int HD>
__global__ void __launch_bounds__(FW * 32)
    k_flash_bf16_fwd(float *out, float *lse, const float *qkv, int B, int T, int C, int NH,
                     float scale) {
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)smem, *Ks = Qs + FT * (HD + 8), *Vs = Ks + FT * (HD + 8);
    float *Ss = (float *)(Vs + FT * (HD + 8));
    __nv_bfloat16 *Ps = (__nv_bfloat16 *)(Ss + FW * 16 * SLD);
    float *Os = (float *)(Ps + FW * 16 * PLD);
    int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    int q0 = blockIdx.x * FT, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const float *base = qkv + (size_t)b * T * 3 * C + (size_t)h * HD;
    load_tile<HD>(Qs, base, 3 * (size_t)C, q0, T);
    float *S = Ss + w * 16 * SLD, *O = Os + w * 16 * (HD + 4);
    __nv_bfloat16 *P = Ps + w * 16 * PLD;
    for (int i = lane; i < 16 * (HD + 4); i += 32) O[i] = 0.0f;
    int r = lane >> 1, half = lane & 1;
    float m = -INFINITY, l = 0.0f;
    for (int k0 = 0; k0 < T; k0 += FT) {
        __syncthreads(); /* Ks, Vs free (and Qs loaded, first time) */
        load_tile<HD>(Ks, base + C, 3 * (size_t)C, k0, T);
        load_tile<HD>(Vs, base + 2 * C, 3 * (size_t)C, k0, T);
        __syncthreads();
        mm_abt<HD>(S, Qs + w * 16 * (HD + 8), Ks);
        __syncwarp();
        float mx = -INFINITY;
        for (int c = half * 32; c < half * 32 + 32; c++)
            if (k0 + c < T) mx = fmaxf(mx, S[r * SLD + c] * scale);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        float mn = fmaxf(m, mx), corr = expf(m - mn), sum = 0.0f;
        for (int c = half * 32; c < half * 32 + 32; c++) {
            float p = k0 + c < T ? expf(S[r * SLD + c] * scale - mn) : 0.0f;
            P[r * PLD + c] = __float2bfloat16_rn(p);
            sum += p;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * corr + sum;
        m = mn;
        for (int d = half; d < HD; d += 2) O[r * (HD + 4) + d] *= corr;
        __syncwarp();
        frag_c acc[HD / 16];
#pragma unroll
        for (int j = 0; j < HD / 16; j++)
            wmma::load_matrix_sync(acc[j], O + j * 16, HD + 4, wmma::mem_row_major);
        mm_pv<HD>(acc, P, Vs);
#pragma unroll
        for (int j = 0; j < HD / 16; j++)
            wmma::store_matrix_sync(O + j * 16, acc[j], HD + 4, wmma::mem_row_major);
        __syncwarp();
    }
    int t = q0 + w * 16 + r;
    if (t < T) {
        float inv = 1.0f / l;
        float *op = out + ((size_t)b * T + t) * C + (size_t)h * HD;
        for (int d = half; d < HD; d += 2) op[d] = O[r * (HD + 4) + d] * inv;
        if (half == 0) lse[(size_t)bh * T + t] = m + logf(l);
    }
}

/* a warp's (16, HD) accumulators, times mul, to row r of dst (NULL: row past T), staged
 * through the warp's (16, SLD) float tile S in column blocks of FT; lanes r = lane/2 */
template <int HD>
__device__ __forceinline__ void store_rows(frag_c (&acc)[HD / 16], float *S, float *dst,
                                           float mul, int r, int half) {
#pragma unroll
    for (int j0 = 0; j0 < HD; j0 += FT) {
        __syncwarp();
#pragma unroll
        for (int j = 0; j < FT / 16; j++)
            if (j0 + j * 16 < HD)
                wmma::store_matrix_sync(S + j * 16, acc[j0 / 16 + j], SLD, wmma::mem_row_major);
        __syncwarp();
        int nj = (HD - j0) < FT ? (HD - j0) : FT;
        if (dst)
            for (int d = half; d < nj; d += 2) dst[j0 + d] = S[r * SLD + d] * mul;
    }
}

template <int HD>
static size_t bwd_smem() {
    /* two bf16 (FT, HD+8) operand tiles of the other side, two score tiles (S, dP) per warp,
     * two bf16 (P, dS) tiles per warp, lse and D of the other side, the output staging tile */
    return sizeof(__nv_bfloat16) * 2 * FT * (HD + 8) + sizeof(__nv_bfloat16) * 2 * FT * (HD + 8) +
           sizeof(float) * 2 * FW * 16 * SLD + sizeof(__nv_bfloat16) * 2 * FW * 16 * PLD +
           sizeof(float) * 2 * FT;
}

/* dK, dV for a tile of FT keys: grid (ceil(T/FT), B*NH). Own tiles: Ks, Vs (this block's keys);
 * per query tile: Qs, Gs (dout). Warp w: keys 16w..16w+15. S^T = K Q^T, dP^T = V dO^T. */
template <int HD>
__global__ void __launch_bounds__(FW * 32)
    k_flash_bf16_dkv(float *dqkv, const float *dout, const float *qkv, const float *lse,
                     const float *Dl, int B, int T, int C, int NH, float scale) {
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16 *Ks = (__nv_bfloat16 *)smem, *Vs = Ks + FT * (HD + 8);
    __nv_bfloat16 *Qs = Vs + FT * (HD + 8), *Gs = Qs + FT * (HD + 8);
    float *Ss = (float *)(Gs + FT * (HD + 8)), *Ds = Ss + FW * 16 * SLD;
    __nv_bfloat16 *Pb = (__nv_bfloat16 *)(Ds + FW * 16 * SLD), *Sb = Pb + FW * 16 * PLD;
    float *Ls = (float *)(Sb + FW * 16 * PLD), *Dv = Ls + FT;
    int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    int k0 = blockIdx.x * FT, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const float *base = qkv + (size_t)b * T * 3 * C + (size_t)h * HD;
    const float *gbase = dout + (size_t)b * T * C + (size_t)h * HD;
    load_tile<HD>(Ks, base + C, 3 * (size_t)C, k0, T);
    load_tile<HD>(Vs, base + 2 * C, 3 * (size_t)C, k0, T);
    float *S = Ss + w * 16 * SLD, *dP = Ds + w * 16 * SLD;
    __nv_bfloat16 *P = Pb + w * 16 * PLD, *dS = Sb + w * 16 * PLD;
    frag_c dk[HD / 16], dv[HD / 16];
#pragma unroll
    for (int j = 0; j < HD / 16; j++) {
        wmma::fill_fragment(dk[j], 0.0f);
        wmma::fill_fragment(dv[j], 0.0f);
    }
    int r = lane >> 1, half = lane & 1;
    for (int q0 = 0; q0 < T; q0 += FT) {
        __syncthreads();
        load_tile<HD>(Qs, base, 3 * (size_t)C, q0, T);
        load_tile<HD>(Gs, gbase, (size_t)C, q0, T);
        for (int i = threadIdx.x; i < FT; i += blockDim.x) {
            int t = q0 + i;
            Ls[i] = t < T ? lse[(size_t)bh * T + t] : 0.0f;
            Dv[i] = t < T ? Dl[(size_t)bh * T + t] : 0.0f;
        }
        __syncthreads();
        mm_abt<HD>(S, Ks + w * 16 * (HD + 8), Qs);  /* S^T (16 keys, FT queries) */
        mm_abt<HD>(dP, Vs + w * 16 * (HD + 8), Gs); /* dP^T */
        __syncwarp();
        for (int c = half * 32; c < half * 32 + 32; c++) {
            float p = q0 + c < T ? expf(S[r * SLD + c] * scale - Ls[c]) : 0.0f;
            P[r * PLD + c] = __float2bfloat16_rn(p);
            dS[r * PLD + c] = __float2bfloat16_rn(p * (dP[r * SLD + c] - Dv[c]));
        }
        __syncwarp();
        mm_pv<HD>(dv, P, Gs);  /* dV += P^T dO */
        mm_pv<HD>(dk, dS, Qs); /* dK += dS^T Q */
    }
    int s = k0 + w * 16 + r;
    store_rows<HD>(dk, S, s < T ? dqkv + ((size_t)b * T + s) * 3 * C + C + (size_t)h * HD : NULL,
                   scale, r, half);
    store_rows<HD>(dv, S, s < T ? dqkv + ((size_t)b * T + s) * 3 * C + 2 * C + (size_t)h * HD : NULL,
                   1.0f, r, half);
}

/* dQ for a tile of FT queries: grid (ceil(T/FT), B*NH). Own: Qs, Gs; per key tile: Ks, Vs. */
template <int HD>
__global__ void __launch_bounds__(FW * 32)
    k_flash_bf16_dq(float *dqkv, const float *dout, const float *qkv, const float *lse,
                    const float *Dl, int B, int T, int C, int NH, float scale) {
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)smem, *Gs = Qs + FT * (HD + 8);
    __nv_bfloat16 *Ks = Gs + FT * (HD + 8), *Vs = Ks + FT * (HD + 8);
    float *Ss = (float *)(Vs + FT * (HD + 8)), *Ds = Ss + FW * 16 * SLD;
    __nv_bfloat16 *Pb = (__nv_bfloat16 *)(Ds + FW * 16 * SLD), *Sb = Pb + FW * 16 * PLD;
    float *Ls = (float *)(Sb + FW * 16 * PLD), *Dv = Ls + FT;
    int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    int q0 = blockIdx.x * FT, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const float *base = qkv + (size_t)b * T * 3 * C + (size_t)h * HD;
    const float *gbase = dout + (size_t)b * T * C + (size_t)h * HD;
    load_tile<HD>(Qs, base, 3 * (size_t)C, q0, T);
    load_tile<HD>(Gs, gbase, (size_t)C, q0, T);
    for (int i = threadIdx.x; i < FT; i += blockDim.x) {
        int t = q0 + i;
        Ls[i] = t < T ? lse[(size_t)bh * T + t] : 0.0f;
        Dv[i] = t < T ? Dl[(size_t)bh * T + t] : 0.0f;
    }
    float *S = Ss + w * 16 * SLD, *dP = Ds + w * 16 * SLD;
    __nv_bfloat16 *dS = Sb + w * 16 * PLD;
    (void)Pb;
    frag_c dq[HD / 16];
#pragma unroll
    for (int j = 0; j < HD / 16; j++) wmma::fill_fragment(dq[j], 0.0f);
    int r = lane >> 1, half = lane & 1, qr = w * 16 + r;
    for (int k0 = 0; k0 < T; k0 += FT) {
        __syncthreads();
        load_tile<HD>(Ks, base + C, 3 * (size_t)C, k0, T);
        load_tile<HD>(Vs, base + 2 * C, 3 * (size_t)C, k0, T);
        __syncthreads();
        mm_abt<HD>(S, Qs + w * 16 * (HD + 8), Ks);  /* S (16 queries, FT keys) */
        mm_abt<HD>(dP, Gs + w * 16 * (HD + 8), Vs); /* dP = dO V^T */
        __syncwarp();
        for (int c = half * 32; c < half * 32 + 32; c++) {
            float p = k0 + c < T ? expf(S[r * SLD + c] * scale - Ls[qr]) : 0.0f;
            dS[r * PLD + c] = __float2bfloat16_rn(p * (dP[r * SLD + c] - Dv[qr]));
        }
        __syncwarp();
        mm_pv<HD>(dq, dS, Ks); /* dQ += dS K */
    }
    int t = q0 + qr;
    store_rows<HD>(dq, S, t < T ? dqkv + ((size_t)b * T + t) * 3 * C + (size_t)h * HD : NULL,
                   scale, r, half);
}

/* ------------------------------------------------------------------ dispatch */

template <int HD>
static void flash_fwd(float *out, float *lse, const float *qkv, int B, int T, int C, int NH,
                      int prec, float scale) {
    if (prec == MAE_PREC_BF16) {
        size_t sm = fwd_smem<HD>();
        CUDA_CHECK(cudaFuncSetAttribute(k_flash_bf16_fwd<HD>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
        dim3 grid((T + FT - 1) / FT, B * NH);
        k_flash_bf16_fwd<HD><<<grid, FW * 32, sm>>>(out, lse, qkv, B, T, C, NH, scale);
    } else {
        size_t n = (size_t)B * NH * T;
        k_flash_f32_fwd<HD><<<(unsigned)((n + 127) / 128), 128>>>(out, lse, qkv, B, T, C, NH,
                                                                   scale);
    }
    CU_LAUNCHED();
}

template <int HD>
static void flash_bwd(float *dqkv, const float *dout, const float *qkv, const float *lse,
                      const float *D, int B, int T, int C, int NH, int prec, float scale) {
    if (prec == MAE_PREC_BF16) {
        size_t sm = bwd_smem<HD>();
        CUDA_CHECK(cudaFuncSetAttribute(k_flash_bf16_dkv<HD>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
        CUDA_CHECK(cudaFuncSetAttribute(k_flash_bf16_dq<HD>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
        dim3 grid((T + FT - 1) / FT, B * NH);
        k_flash_bf16_dkv<HD><<<grid, FW * 32, sm>>>(dqkv, dout, qkv, lse, D, B, T, C, NH, scale);
        CU_LAUNCHED();
        k_flash_bf16_dq<HD><<<grid, FW * 32, sm>>>(dqkv, dout, qkv, lse, D, B, T, C, NH, scale);
    } else {
        size_t n = (size_t)B * NH * T;
        unsigned g = (unsigned)((n + 127) / 128);
        k_flash_f32_dkv<HD><<<g, 128>>>(dqkv, dout, qkv, lse, D, B, T, C, NH, scale);
        CU_LAUNCHED();
        k_flash_f32_dq<HD><<<g, 128>>>(dqkv, dout, qkv, lse, D, B, T, C, NH, scale);
    }
    CU_LAUNCHED();
}

#define HD_SWITCH(hd, call)                                                                   \
    switch (hd) {                                                                             \
    case 16: call(16); break;                                                                 \
    case 32: call(32); break;                                                                 \
    case 48: call(48); break;                                                                 \
    case 64: call(64); break;                                                                 \
    case 80: call(80); break;                                                                 \
    case 96: call(96); break;                                                                 \
    case 112: call(112); break;                                                               \
    case 128: call(128); break;                                                               \
    default: cu_fatal(__FILE__, __LINE__, "flash attention", "unsupported head dim");         \
    }

void cu_flash_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH,
                      int prec) {
    int hd = C / NH;
    float scale = 1.0f / sqrtf((float)hd);
#define FWD_CALL(H) flash_fwd<H>(out, lse, qkv, B, T, C, NH, prec, scale)
    HD_SWITCH(hd, FWD_CALL)
#undef FWD_CALL
}

void cu_flash_backward(float *dqkv, float *D, const float *dout, const float *qkv,
                       const float *lse, const float *out, int B, int T, int C, int NH,
                       int prec) {
    int hd = C / NH;
    float scale = 1.0f / sqrtf((float)hd);
    size_t rows = (size_t)B * NH * T;
    k_flash_delta<<<(unsigned)((rows + 7) / 8), 256>>>(D, dout, out, B, T, C, NH);
    CU_LAUNCHED();
#define BWD_CALL(H) flash_bwd<H>(dqkv, dout, qkv, lse, D, B, T, C, NH, prec, scale)
    HD_SWITCH(hd, BWD_CALL)
#undef BWD_CALL
}
