/* pth.h - PyTorch checkpoint files (torch.save's zip archive holding data.pkl + data/<key>
 * storages), read WITHOUT running code from the file.
 *
 * torch.load unpickles, and a pickle can call any Python function it names (os.system, ...).
 * This reader is a restricted unpickler: it accepts only the opcodes and globals that a state
 * dict of tensors needs (collections.OrderedDict, torch._utils._rebuild_tensor_v2 and
 * _rebuild_parameter, the torch.*Storage types, torch.Size) plus inert data a training run saves
 * beside the weights (argparse.Namespace of args, optimizer/scaler state: dicts, lists, numbers,
 * strings, tensors). Every other global (os.system, builtins.eval, ...) is rejected with an error
 * naming it, before anything is built. Nothing is ever called: a "global" is only a tag.
 *
 * The tensors found are those of one state dict: the top-level dict's "model" entry (official
 * main_pretrain/main_finetune save_model), else its "state_dict" / "model_state" entry, else the
 * top-level dict itself (a plain torch.save(model.state_dict()) or HF pytorch_model.bin). Keys are
 * the dict keys as written (a "module." prefix is kept; the caller maps names). Non-tensor values
 * in that dict are skipped.
 */
#ifndef MAE_IO_PTH_H
#define MAE_IO_PTH_H

#include <stddef.h>
#include <stdint.h>

#include "mae.h"

#define PTH_MAX_DIMS 8

enum { PTH_F32 = 1, PTH_F16, PTH_BF16, PTH_F64, PTH_I64, PTH_I32, PTH_I16, PTH_I8, PTH_U8,
       PTH_BOOL };

typedef struct pth_tensor {
    char name[256];                 /* key in the state dict */
    int dtype;                      /* PTH_* (from the storage type) */
    int ndim;                       /* 0..PTH_MAX_DIMS */
    int64_t shape[PTH_MAX_DIMS];
    int64_t stride[PTH_MAX_DIMS];   /* in elements, as torch (may be non-contiguous) */
    int64_t offset;                 /* storage offset, in elements */
    size_t numel;
    const uint8_t *storage;         /* the storage's bytes (inside pth_file's buffers) */
    size_t storage_bytes;
} pth_tensor;

typedef struct pth_file {
    char path[1024];
    int n;                          /* tensors of the state dict, in pickle order */
    pth_tensor *t;
    char dict_key[32];              /* "model", "state_dict", "model_state" or "" (top level) */
    /* top-level "args" (argparse.Namespace or dict) entries whose values are str/int/float/bool,
     * as text ("mae_vit_base_patch16", "16", "0.75", "True"): ints in decimal, floats as Python's
     * repr (shortest round-trip digits: "0.00015", "40.0", "1e-08"); other values are skipped */
    int nargs;
    char **arg_keys, **arg_vals;
    int has_epoch;                  /* top-level "epoch" int, if present */
    int64_t epoch;
    void *priv;                     /* owned buffers */
} pth_file;

/* 1 if the bytes start like a zip archive ("PK\3\4"), which is how torch.save writes (>= 1.6). */
int pth_is_zip(const uint8_t *buf, size_t len);

/* Opens and validates: zip structure (stored or deflated entries, bounds-checked, CRC checked),
 * the pickle (restricted, see above), every tensor's storage present and large enough for its
 * shape/strides/offset, byteorder little. Errors name the file and what is wrong: not a zip
 * (the legacy pre-1.6 torch format is named as such), truncated, a forbidden global
 * ("module.name"), an unsupported opcode, an unknown storage dtype, a missing storage record.
 * On error *f is left closed (pth_close is harmless). */
int pth_open(pth_file *f, const char *path, mae_error *err);
void pth_close(pth_file *f);
int pth_find(const pth_file *f, const char *name); /* index or -1 */
const char *pth_arg(const pth_file *f, const char *key); /* NULL if absent */

/* Copies tensor idx into dst as float32 in C (row-major) order, following its strides, converting
 * from F32, F16, BF16 or F64 (exactly as torch's .float()). Error naming the file and tensor if its
 * dtype is not floating point or its numel != expected_numel. */
int pth_read_f32(const pth_file *f, int idx, float *dst, size_t expected_numel, mae_error *err);

#endif
