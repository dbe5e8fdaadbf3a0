/* ops_attention.c - multi-head self attention on the CPU, one (batch, head) pair per task.
 * qkv (B,T,3C) = [q | k | v] per token, head h at columns h*hd .. h*hd+hd-1 of each part. */
#include <math.h>
#include <string.h>

#include "common.h"
#include "cpu.h"

/* out (B,T,C), att (B,NH,T,T) <- qkv (B,T,3C) */
void cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                           int NH) {
    int hd = C / NH;
    float scale = 1.0f / sqrtf((float)hd);
    size_t C3 = 3 * (size_t)C;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *base = qkv + (size_t)b * T * C3;
            float *a = att + ((size_t)b * NH + h) * T * T;
            for (int t = 0; t < T; t++) {
                const float *q = base + t * C3 + h * hd;
                float *row = a + (size_t)t * T;
                float mx = -INFINITY;
                for (int s = 0; s < T; s++) {
                    const float *k = base + s * C3 + C + h * hd;
                    float dot = 0.0f;
                    for (int d = 0; d < hd; d++) dot += q[d] * k[d];
                    dot *= scale;
                    row[s] = dot;
                    if (dot > mx) mx = dot;
                }
                float sum = 0.0f;
                for (int s = 0; s < T; s++) {
                    row[s] = expf(row[s] - mx);
                    sum += row[s];
                }
                float inv = 1.0f / sum;
                for (int s = 0; s < T; s++) row[s] *= inv;
                float *o = out + ((size_t)b * T + t) * C + h * hd;
                memset(o, 0, sizeof(float) * hd);
                for (int s = 0; s < T; s++) {
                    const float *v = base + s * C3 + 2 * C + h * hd;
                    float p = row[s];
                    for (int d = 0; d < hd; d++) o[d] += p * v[d];
                }
            }
        }
    }
}

/* dqkv (B,T,3C) += ; datt (B,NH,T,T) scratch */
void cpu_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                            const float *att, int B, int T, int C, int NH) {
    int hd = C / NH;
    float scale = 1.0f / sqrtf((float)hd);
    size_t C3 = 3 * (size_t)C;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *base = qkv + (size_t)b * T * C3;
            float *dbase = dqkv + (size_t)b * T * C3;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            float *da = datt + ((size_t)b * NH + h) * T * T;
            for (int t = 0; t < T; t++) {
                const float *go = dout + ((size_t)b * T + t) * C + h * hd;
                const float *arow = a + (size_t)t * T;
                float *drow = da + (size_t)t * T;
                /* d(att) = dout . v ; dv += att * dout */
                float dot_sum = 0.0f;
                for (int s = 0; s < T; s++) {
                    const float *v = base + s * C3 + 2 * C + h * hd;
                    float *dv = dbase + s * C3 + 2 * C + h * hd;
                    float g = 0.0f, p = arow[s];
                    for (int d = 0; d < hd; d++) {
                        g += go[d] * v[d];
                        dv[d] += p * go[d];
                    }
                    drow[s] = g;
                    dot_sum += g * p;
                }
                /* softmax backward, then through the scaled dot product */
                const float *q = base + t * C3 + h * hd;
                float *dq = dbase + t * C3 + h * hd;
                for (int s = 0; s < T; s++) {
                    float dpre = arow[s] * (drow[s] - dot_sum) * scale;
                    const float *k = base + s * C3 + C + h * hd;
                    float *dk = dbase + s * C3 + C + h * hd;
                    for (int d = 0; d < hd; d++) {
                        dq[d] += dpre * k[d];
                        dk[d] += dpre * q[d];
                    }
                }
            }
        }
    }
}
