/* main.c - `mae` command dispatcher. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dist/dist.h"

static void usage(void) {
    printf("mae %s - Masked Autoencoders in C\n\n"
           "usage: mae <command> [flags]   (mae <command> --help for its flags)\n\n"
           "commands:\n"
           "  pretrain     MAE pretraining (default: Fashion-MNIST from dataset-fashion-mnist)\n"
           "  reconstruct  forward a batch (.npy) through a checkpoint; writes pred/mask/ids_restore\n"
           "  visualize    PNG of MAE reconstructions of images, as the official demo\n"
           "  bench        training throughput on synthetic input\n"
           "  finetune     fine-tune a ViT classifier from a pretrained encoder (main_finetune.py)\n"
           "  linprobe     linear probe of a frozen pretrained encoder (main_linprobe.py)\n"
           "  eval         top-1/top-5 and confusion of a classifier checkpoint\n"
           "  embed        encoder features of images (folder, list or .npy) as .npy\n"
           "  export       write a checkpoint for the official code, timm or HF transformers\n"
           "  devices      the devices of --device (cpu, cuda) and whether this machine has them\n",
           MAE_VERSION_STRING);
}

static int run_command(int argc, char **argv);

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (argc < 2) {
            fprintf(stderr, "mae: missing command (see mae --help)\n");
            return 2;
        }
        usage();
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("mae %s\n", MAE_VERSION_STRING);
        return 0;
    }
    /* under mpirun/srun: join the job (a world of 1, and no MPI at all, otherwise) */
    mae_error derr = {{0}};
    if (mae_dist_init(&argc, &argv, &derr) != MAE_OK) {
        fprintf(stderr, "mae: %s\n", derr.msg);
        return 2;
    }
    int rc = run_command(argc, argv);
    mae_dist_finalize();
    return rc;
}

static int run_command(int argc, char **argv) {
    if (mae_dist_world() > 1 && strcmp(argv[1], "pretrain") != 0 &&
        strcmp(argv[1], "finetune") != 0 && strcmp(argv[1], "linprobe") != 0) {
        if (mae_dist_rank() == 0)
            fprintf(stderr, "mae %s: runs in one process; this job has %d (mpirun -np 1, or "
                            "run it without mpirun)\n", argv[1], mae_dist_world());
        return 2;
    }
    if (!strcmp(argv[1], "pretrain")) return cmd_pretrain(argc, argv);
    if (!strcmp(argv[1], "reconstruct")) return cmd_reconstruct(argc, argv);
    if (!strcmp(argv[1], "visualize")) return cmd_visualize(argc, argv);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
    if (!strcmp(argv[1], "finetune")) return cmd_finetune(argc, argv);
    if (!strcmp(argv[1], "linprobe")) return cmd_linprobe(argc, argv);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc, argv);
    if (!strcmp(argv[1], "embed")) return cmd_embed(argc, argv);
    if (!strcmp(argv[1], "export")) return cmd_export(argc, argv);
    if (!strcmp(argv[1], "devices")) return cmd_devices(argc, argv);
    fprintf(stderr, "mae: unknown command '%s' (see mae --help for the commands)\n", argv[1]);
    return 2;
}
