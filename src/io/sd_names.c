/* sd_names.c - tensor names of HF transformers' ViTMAE (4.x and 5.x) <-> the official names.
 *
 *   official                      transformers 4.x                         transformers 5.x
 *   cls_token                     vit.embeddings.cls_token                 (same)
 *   pos_embed                     vit.embeddings.position_embeddings       (same)
 *   patch_embed.proj.*            vit.embeddings.patch_embeddings.projection.*
 *   blocks.i.                     vit.encoder.layer.i.                     vit.layers.i.
 *     norm1.* / norm2.*             layernorm_before.* / layernorm_after.*   (same)
 *     attn.qkv.* (fused)            attention.attention.{query,key,value}.*  attention.{q,k,v}_proj.*
 *     attn.proj.*                   attention.output.dense.*                 attention.o_proj.*
 *     mlp.fc1.* / mlp.fc2.*         intermediate.dense.* / output.dense.*    mlp.fc1.* / mlp.fc2.*
 *   norm.*                        vit.layernorm.*                          (same)
 *   decoder_blocks.i.             decoder.decoder_layers.i. (block names as above)
 *   decoder_embed, mask_token, decoder_pos_embed, decoder_norm, decoder_pred: under decoder.
 *   head.*                        classifier.* (ViTForImageClassification)
 * A ViTMAEModel saved on its own has no "vit." prefix.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "statedict.h"

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* "N.rest" -> N and rest; 0 if s does not start with digits and a dot */
static int split_index(const char *s, int *idx, const char **rest) {
    char *end;
    if (*s < '0' || *s > '9') return 0;
    long v = strtol(s, &end, 10);
    if (*end != '.' || v < 0 || v > 100000) return 0;
    *idx = (int)v;
    *rest = end + 1;
    return 1;
}

static const struct {
    const char *hf, *off;
    int part;
} k_layer[] = {
    {"layernorm_before.", "norm1.", -1},
    {"layernorm_after.", "norm2.", -1},
    {"attention.attention.query.", "attn.qkv.", 0},
    {"attention.attention.key.", "attn.qkv.", 1},
    {"attention.attention.value.", "attn.qkv.", 2},
    {"attention.output.dense.", "attn.proj.", -1},
    {"intermediate.dense.", "mlp.fc1.", -1},
    {"output.dense.", "mlp.fc2.", -1},
    /* transformers 5.x */
    {"attention.q_proj.", "attn.qkv.", 0},
    {"attention.k_proj.", "attn.qkv.", 1},
    {"attention.v_proj.", "attn.qkv.", 2},
    {"attention.o_proj.", "attn.proj.", -1},
    {"mlp.fc1.", "mlp.fc1.", -1},
    {"mlp.fc2.", "mlp.fc2.", -1},
};
#define N_LAYER ((int)(sizeof k_layer / sizeof k_layer[0]))

/* block-internal HF name -> official; -2 if unknown */
static int map_layer(const char *rest, const char *prefix, int idx, char *out, size_t cap) {
    for (int i = 0; i < N_LAYER; i++)
        if (starts(rest, k_layer[i].hf)) {
            snprintf(out, cap, "%s.%d.%s%s", prefix, idx, k_layer[i].off,
                     rest + strlen(k_layer[i].hf));
            return k_layer[i].part;
        }
    return -2;
}

static const struct {
    const char *hf, *off;
} k_top[] = {
    {"embeddings.cls_token", "cls_token"},
    {"embeddings.position_embeddings", "pos_embed"},
    {"embeddings.patch_embeddings.projection.", "patch_embed.proj."},
    {"layernorm.", "norm."},
    {"decoder.decoder_embed.", "decoder_embed."},
    {"decoder.mask_token", "mask_token"},
    {"decoder.decoder_pos_embed", "decoder_pos_embed"},
    {"decoder.decoder_norm.", "decoder_norm."},
    {"decoder.decoder_pred.", "decoder_pred."},
    {"classifier.", "head."},
};
#define N_TOP ((int)(sizeof k_top / sizeof k_top[0]))

int mae_sd_map_name(const char *in, char *out, size_t cap, int *hf) {
    *hf = 0;
    for (;;) { /* wrapper prefixes, possibly nested */
        if (starts(in, "module.")) in += 7;
        else if (starts(in, "_orig_mod.")) in += 10;
        else break;
    }
    const char *s = starts(in, "vit.") ? in + 4 : in;
    const char *rest;
    int idx, part;
    if ((starts(s, "encoder.layer.") && split_index(s + 14, &idx, &rest)) ||
        (starts(s, "layers.") && split_index(s + 7, &idx, &rest))) {
        if ((part = map_layer(rest, "blocks", idx, out, cap)) != -2) {
            *hf = 1;
            return part;
        }
    } else if (starts(s, "decoder.decoder_layers.") && split_index(s + 23, &idx, &rest)) {
        if ((part = map_layer(rest, "decoder_blocks", idx, out, cap)) != -2) {
            *hf = 1;
            return part;
        }
    } else {
        for (int i = 0; i < N_TOP; i++) {
            size_t n = strlen(k_top[i].hf);
            int exact = k_top[i].hf[n - 1] != '.';
            if (exact ? strcmp(s, k_top[i].hf) == 0 : starts(s, k_top[i].hf)) {
                snprintf(out, cap, "%s%s", k_top[i].off, exact ? "" : s + n);
                *hf = 1;
                return -1;
            }
        }
    }
    snprintf(out, cap, "%s", in);
    return -1;
}

int mae_sd_hf_name(const char *off, int part, char *out, size_t cap) {
    const char *rest;
    int idx;
    const char *pre = NULL;
    if (starts(off, "blocks.") && split_index(off + 7, &idx, &rest)) pre = "vit.encoder.layer";
    else if (starts(off, "decoder_blocks.") && split_index(off + 15, &idx, &rest))
        pre = "decoder.decoder_layers";
    if (pre) {
        for (int i = 0; i < 8; i++) /* the 4.x rows of k_layer */
            if (starts(rest, k_layer[i].off) && k_layer[i].part == (part < 0 ? -1 : part)) {
                snprintf(out, cap, "%s.%d.%s%s", pre, idx, k_layer[i].hf,
                         rest + strlen(k_layer[i].off));
                return MAE_OK;
            }
        return MAE_ERR;
    }
    for (int i = 0; i < N_TOP - 1; i++) { /* not head: ViTMAE has no classifier */
        size_t n = strlen(k_top[i].off);
        int exact = k_top[i].off[n - 1] != '.';
        if (exact ? strcmp(off, k_top[i].off) == 0 : starts(off, k_top[i].off)) {
            snprintf(out, cap, "%s%s%s", starts(k_top[i].hf, "decoder.") ? "" : "vit.",
                     k_top[i].hf, exact ? "" : off + n);
            return MAE_OK;
        }
    }
    return MAE_ERR;
}
