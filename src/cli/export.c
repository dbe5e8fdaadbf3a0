/* export.c - `mae export`: a checkpoint (ours, official .pth, timm, HF) written for the official
 * code, timm or HF transformers (io/checkpoint.h mae_export). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "io/checkpoint.h"

int cmd_export(int argc, char **argv) {
    const char *checkpoint = NULL, *format = NULL, *output = NULL;
    int num_heads = 0, decoder_num_heads = 0;
    arg_spec s[] = {
        {"checkpoint", ARG_STR, &checkpoint,
         "checkpoint: ours, an official/timm .pth or .safetensors, or an HF folder (required)", 0},
        {"format", ARG_STR, &format, "official | timm | hf (required)", 0},
        {"output", ARG_STR, &output, "output folder for model.safetensors + config.json (required)", 0},
        {"num_heads", ARG_INT, &num_heads, "encoder heads when the file does not say", 0},
        {"decoder_num_heads", ARG_INT, &decoder_num_heads, "decoder heads when the file does not say", 0},
    };
    int ns = (int)(sizeof s / sizeof s[0]);
    mae_error err = {{0}};
    int rc = args_parse(s, ns, argc, argv, 2, "export", &err);
    if (rc == 1) {
        args_help(s, ns, "export",
                  "Writes a checkpoint as model.safetensors + config.json for another tool:\n"
                  "  official: official names; config.json holds the model_args of\n"
                  "            models_mae.MaskedAutoencoderViT (models_vit.VisionTransformer for a\n"
                  "            classifier or an encoder-only file)\n"
                  "  timm:     the encoder (+ fc_norm/head of a classifier), timm's hub config.json\n"
                  "  hf:       transformers ViTMAEForPreTraining (ViTMAEModel without a decoder),\n"
                  "            4.x tensor names, loadable with from_pretrained(folder)");
        return 0;
    }
    if (rc == MAE_OK && (!checkpoint || !format || !output))
        rc = mae_errf(&err, "--checkpoint, --format and --output are required (see mae export --help)");
    if (rc == MAE_OK && strcmp(format, "official") && strcmp(format, "timm") && strcmp(format, "hf"))
        rc = mae_errf(&err, "--format must be official, timm or hf, got '%s'", format);
    if (rc == MAE_OK && (num_heads < 0 || decoder_num_heads < 0))
        rc = mae_errf(&err, "--num_heads and --decoder_num_heads must be >= 0");
    if (rc != MAE_OK) {
        fprintf(stderr, "mae export: %s\n", err.msg);
        return 2;
    }
    if (cli_mkdirs(output, &err) != MAE_OK ||
        mae_export(checkpoint, format, output, num_heads, decoder_num_heads, &err) != MAE_OK) {
        fprintf(stderr, "mae export: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s/model.safetensors and %s/config.json (%s)\n", output, output, format);
    return 0;
}
