/* pth_pickle.c - the restricted unpickler's machine: opcodes, stack, memo, arena (see
 * pth_pickle.h). What the allowed globals do is in pth_globals.c. */
#include "pth_pickle_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* ------------------------------------------------------------------ arena and values */

#define ARENA_BLOCK 65536u

typedef struct pk_block {
    struct pk_block *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
} pk_block;

void *pk_alloc(pk_unpickler *u, size_t n) {
    n = (n + 15u) & ~(size_t)15u;
    pk_block *b = u->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
        b = mae_xmalloc(sizeof(pk_block) + cap);
        b->cap = cap;
        b->used = 0;
        if (n > ARENA_BLOCK / 4 && u->blocks) { /* a big one: keep the current block on top */
            b->next = u->blocks->next;
            u->blocks->next = b;
        } else {
            b->next = u->blocks;
            u->blocks = b;
        }
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    u->arena_bytes += n;
    memset(p, 0, n);
    return p;
}

pk_value *pk_new(pk_unpickler *u, int type) {
    pk_value *v = pk_alloc(u, sizeof *v);
    v->type = type;
    return v;
}

/* Appends x to a growable array of value pointers (arena memory; old arrays are abandoned, so
 * the waste is at most the final size). */
void pk_vec_push(pk_unpickler *u, pk_value ***arr, size_t *n, size_t *cap, pk_value *x) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        pk_value **na = pk_alloc(u, nc * sizeof *na);
        if (*n) memcpy(na, *arr, *n * sizeof *na);
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = x;
}

void pk_free(pk_unpickler *u) {
    if (!u) return;
    for (pk_block *b = u->blocks, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    free(u->stack);
    free(u->marks);
    free(u->memo);
    free(u);
}

int pk_str_eq(const pk_value *v, const char *s) {
    size_t n = strlen(s);
    return v && v->type == PK_STR && v->u.s.len == n && memcmp(v->u.s.p, s, n) == 0;
}

const pk_value *pk_dict_get(const pk_value *d, const char *key) {
    if (!d || d->type != PK_DICT) return NULL;
    for (size_t i = d->u.dict.n / 2; i-- > 0;)
        if (pk_str_eq(d->u.dict.kv[2 * i], key)) return d->u.dict.kv[2 * i + 1];
    return NULL;
}

const char *pk_type_name(const pk_value *v) {
    static const char *const names[] = {"None", "bool", "int", "float", "str", "bytes", "tuple",
                                        "list", "set", "dict", "tensor", "storage", "global",
                                        "opaque object"};
    return v->type >= 0 && v->type <= PK_OPAQUE ? names[v->type] : "?";
}

/* ------------------------------------------------------------------ opcodes */

static const struct {
    unsigned char code;
    const char *name;
} k_opnames[] = {
    {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"},
    {'F', "FLOAT"}, {'I', "INT"}, {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"},
    {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"}, {'Q', "BINPERSID"}, {'R', "REDUCE"},
    {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"},
    {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
    {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"},
    {'j', "LONG_BINGET"}, {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"},
    {'q', "BINPUT"}, {'r', "LONG_BINPUT"}, {'s', "SETITEM"}, {'t', "TUPLE"},
    {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"}, {0x80, "PROTO"},
    {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"},
    {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {0x8a, "LONG1"},
    {0x8b, "LONG4"}, {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"},
    {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"}, {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"},
    {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"}, {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"},
    {0x95, "FRAME"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
};

static const char *op_name(int op) {
    for (size_t i = 0; i < sizeof k_opnames / sizeof k_opnames[0]; i++)
        if (k_opnames[i].code == op) return k_opnames[i].name;
    return NULL;
}

int pk_fail(pk_unpickler *u, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *nm = op_name(u->op);
    return mae_errf(u->err, "%s: data.pkl byte %zu (%s): %s", u->what, u->op_pos,
                    nm ? nm : u->op < 0 ? "end" : "?", msg);
}

static int need(pk_unpickler *u, size_t n) {
    if (u->len - u->pos < n && u->op < 0)
        return pk_fail(u, "truncated pickle (it ends without a STOP opcode)");
    if (u->len - u->pos < n)
        return pk_fail(u, "truncated pickle (needs %zu more bytes, %zu left)", n,
                       u->len - u->pos);
    return MAE_OK;
}

static uint64_t rd_le(pk_unpickler *u, int nbytes) { /* after need() */
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--) v = (v << 8) | u->p[u->pos + (size_t)i];
    u->pos += (size_t)nbytes;
    return v;
}

static int push(pk_unpickler *u, pk_value *v) {
    if (u->sp == u->scap) {
        if (u->scap >= PK_MAX_STACK)
            return pk_fail(u, "pickle stack deeper than %d entries", PK_MAX_STACK);
        size_t nc = u->scap ? u->scap * 2 : 64;
        pk_value **ns = realloc(u->stack, nc * sizeof *ns);
        MAE_ASSERT(ns != NULL);
        u->stack = ns;
        u->scap = nc;
    }
    u->stack[u->sp++] = v;
    return MAE_OK;
}

/* The lowest stack index that the current opcode may pop (above the innermost mark). */
static size_t floor_sp(const pk_unpickler *u) { return u->nmarks ? u->marks[u->nmarks - 1] : 0; }

static int pop(pk_unpickler *u, pk_value **v) {
    if (u->sp <= floor_sp(u)) return pk_fail(u, "pickle stack underflow");
    *v = u->stack[--u->sp];
    return MAE_OK;
}

static int top(pk_unpickler *u, pk_value **v) {
    if (u->sp <= floor_sp(u)) return pk_fail(u, "pickle stack underflow");
    *v = u->stack[u->sp - 1];
    return MAE_OK;
}

/* Pops the innermost mark; the items above it are stack[*k .. sp). */
static int pop_mark(pk_unpickler *u, size_t *k) {
    if (!u->nmarks) return pk_fail(u, "no MARK on the pickle stack");
    *k = u->marks[--u->nmarks];
    return MAE_OK;
}

static int push_mark(pk_unpickler *u) {
    if (u->nmarks == PK_MAX_MARKS)
        return pk_fail(u, "pickle nested deeper than %d MARKs", PK_MAX_MARKS);
    u->marks[u->nmarks++] = u->sp;
    return MAE_OK;
}

static int memo_put(pk_unpickler *u, uint64_t idx) {
    pk_value *v = NULL;
    if (top(u, &v) != MAE_OK) return MAE_ERR;
    if (idx >= PK_MAX_MEMO || idx > u->len)
        return pk_fail(u, "memo index %llu is out of range", (unsigned long long)idx);
    if (idx >= u->memo_cap) {
        size_t nc = u->memo_cap ? u->memo_cap : 64;
        while (nc <= idx) nc *= 2;
        pk_value **nm = realloc(u->memo, nc * sizeof *nm);
        MAE_ASSERT(nm != NULL);
        memset(nm + u->memo_cap, 0, (nc - u->memo_cap) * sizeof *nm);
        u->memo = nm;
        u->memo_cap = nc;
    }
    if (!u->memo[idx]) u->memo_count++;
    u->memo[idx] = v;
    return MAE_OK;
}

static int memo_get(pk_unpickler *u, uint64_t idx) {
    if (idx >= u->memo_cap || !u->memo[idx])
        return pk_fail(u, "memo index %llu was never set", (unsigned long long)idx);
    return push(u, u->memo[idx]);
}

static int push_int(pk_unpickler *u, int type, int64_t i) {
    pk_value *v = pk_new(u, type);
    v->u.i = i;
    return push(u, v);
}

/* 1 if s is UTF-8 as Python decodes it for a pickle (errors='surrogatepass': U+D800..U+DFFF
 * are allowed, overlong forms and code points above U+10FFFF are not). */
static int valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2
                 : c >= 0xF0 && c <= 0xF4 ? 3 : 4;
        if (k == 4 || n - i - 1 < k) return 0;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xF0 && s[i + 1] < 0x90) ||
            (c == 0xF4 && s[i + 1] > 0x8F))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* A str or bytes value pointing into the pickle (which outlives the values). */
static int push_text(pk_unpickler *u, int type, int lenbytes, int is_signed) {
    if (need(u, (size_t)lenbytes) != MAE_OK) return MAE_ERR;
    uint64_t n = rd_le(u, lenbytes);
    if (is_signed && (n & 0x80000000u))
        return pk_fail(u, "negative string length");
    if (need(u, n > SIZE_MAX ? SIZE_MAX : (size_t)n) != MAE_OK) return MAE_ERR;
    if (type == PK_STR && !valid_utf8(u->p + u->pos, (size_t)n))
        return pk_fail(u, "str is not valid UTF-8");
    pk_value *v = pk_new(u, type);
    v->u.s.p = (const char *)u->p + u->pos;
    v->u.s.len = (size_t)n;
    u->pos += (size_t)n;
    return push(u, v);
}

static int push_long1(pk_unpickler *u) {
    if (need(u, 1) != MAE_OK) return MAE_ERR;
    size_t n = u->p[u->pos++];
    if (need(u, n) != MAE_OK) return MAE_ERR;
    if (n > 8) { /* a Python int wider than 64 bits: kept, never interpreted */
        u->pos += n;
        pk_value *v = pk_new(u, PK_OPAQUE);
        v->u.what = "int wider than 64 bits";
        return push(u, v);
    }
    uint64_t x = n ? rd_le(u, (int)n) : 0;
    if (n > 0 && n < 8 && (x >> (8 * n - 1)) & 1u) x |= ~(uint64_t)0 << (8 * n); /* sign */
    int64_t i;
    memcpy(&i, &x, sizeof i);
    return push_int(u, PK_INT, i);
}

/* Collects stack[k .. sp) into a new tuple/list/set and pops them. */
static pk_value *collect(pk_unpickler *u, int type, size_t k) {
    pk_value *v = pk_new(u, type);
    size_t n = u->sp - k;
    if (n) {
        v->u.seq.v = pk_alloc(u, n * sizeof(pk_value *));
        memcpy(v->u.seq.v, u->stack + k, n * sizeof(pk_value *));
    }
    v->u.seq.n = v->u.seq.cap = n;
    u->sp = k;
    return v;
}

static int tuple_n(pk_unpickler *u, size_t n) {
    if (u->sp - floor_sp(u) < n) return pk_fail(u, "pickle stack underflow");
    return push(u, collect(u, PK_TUPLE, u->sp - n));
}

/* Adds stack[k .. sp) (pairs) to dict d, then pops them. */
static int set_items(pk_unpickler *u, pk_value *d, size_t k) {
    if (d->type != PK_DICT) return pk_fail(u, "cannot set items of a %s", pk_type_name(d));
    if ((u->sp - k) % 2) return pk_fail(u, "odd number of items for a dict");
    for (size_t i = k; i < u->sp; i++)
        pk_vec_push(u, &d->u.dict.kv, &d->u.dict.n, &d->u.dict.cap, u->stack[i]);
    u->sp = k;
    return MAE_OK;
}

static int append_items(pk_unpickler *u, pk_value *l, size_t k, int type) {
    if (l->type != type)
        return pk_fail(u, "cannot add items to a %s", pk_type_name(l));
    for (size_t i = k; i < u->sp; i++)
        pk_vec_push(u, &l->u.seq.v, &l->u.seq.n, &l->u.seq.cap, u->stack[i]);
    u->sp = k;
    return MAE_OK;
}

static int read_line(pk_unpickler *u, char *buf, size_t cap) {
    const uint8_t *s = u->p + u->pos, *nl = memchr(s, '\n', u->len - u->pos);
    if (!nl) return pk_fail(u, "truncated pickle (GLOBAL without a newline)");
    size_t n = (size_t)(nl - s);
    if (n >= cap || memchr(s, 0, n)) return pk_fail(u, "malformed GLOBAL name");
    memcpy(buf, s, n);
    buf[n] = '\0';
    u->pos += n + 1;
    return MAE_OK;
}

static int stack_global(pk_unpickler *u) {
    pk_value *name = NULL, *mod = NULL;
    if (pop(u, &name) != MAE_OK || pop(u, &mod) != MAE_OK) return MAE_ERR;
    if (mod->type != PK_STR || name->type != PK_STR)
        return pk_fail(u, "STACK_GLOBAL needs two str, got %s and %s", pk_type_name(mod),
                       pk_type_name(name));
    char m[PK_MAX_GLOBAL], n[PK_MAX_GLOBAL];
    if (mod->u.s.len >= sizeof m || name->u.s.len >= sizeof n ||
        memchr(mod->u.s.p, 0, mod->u.s.len) || memchr(name->u.s.p, 0, name->u.s.len))
        return pk_fail(u, "malformed STACK_GLOBAL name");
    memcpy(m, mod->u.s.p, mod->u.s.len);
    m[mod->u.s.len] = '\0';
    memcpy(n, name->u.s.p, name->u.s.len);
    n[name->u.s.len] = '\0';
    pk_value *g;
    return pk_global(u, m, n, &g) != MAE_OK ? MAE_ERR : push(u, g);
}

/* One opcode at u->pos. *done is set by STOP. */
static int step(pk_unpickler *u, int *done) {
    u->op_pos = u->pos;
    u->op = -1;
    if (need(u, 1) != MAE_OK) return MAE_ERR;
    int op = u->op = u->p[u->pos++];
    pk_value *v = NULL, *w = NULL;
    size_t k = 0;
    char mod[PK_MAX_GLOBAL] = "", name[PK_MAX_GLOBAL] = "";
    switch (op) {
    case 0x80: /* PROTO */
        if (need(u, 1) != MAE_OK) return MAE_ERR;
        if (u->p[u->pos] < 2 || u->p[u->pos] > 5)
            return pk_fail(u, "pickle protocol %d (2 to 5 are supported)", u->p[u->pos]);
        u->pos++;
        return MAE_OK;
    case 0x95: /* FRAME: framing only groups opcodes; the length is checked and ignored */
        if (need(u, 8) != MAE_OK) return MAE_ERR;
        if (rd_le(u, 8) > u->len - u->pos) return pk_fail(u, "frame runs past the end");
        return MAE_OK;
    case '.':
        if (u->sp == 0) return pk_fail(u, "STOP with an empty stack");
        *done = 1;
        return MAE_OK;
    case '(': return push_mark(u);
    case '0': /* POP; with nothing above the innermost mark, Python pops the mark */
        if (u->sp == floor_sp(u) && u->nmarks) return pop_mark(u, &k);
        return pop(u, &v);
    case '1':
        if (pop_mark(u, &k) != MAE_OK) return MAE_ERR;
        u->sp = k;
        return MAE_OK;
    case '2': return top(u, &v) != MAE_OK ? MAE_ERR : push(u, v);
    case 'N': return push(u, pk_new(u, PK_NONE));
    case 0x88: return push_int(u, PK_BOOL, 1);
    case 0x89: return push_int(u, PK_BOOL, 0);
    case 'J':
        if (need(u, 4) != MAE_OK) return MAE_ERR;
        return push_int(u, PK_INT, (int32_t)(uint32_t)rd_le(u, 4));
    case 'K':
        if (need(u, 1) != MAE_OK) return MAE_ERR;
        return push_int(u, PK_INT, (int64_t)rd_le(u, 1));
    case 'M':
        if (need(u, 2) != MAE_OK) return MAE_ERR;
        return push_int(u, PK_INT, (int64_t)rd_le(u, 2));
    case 0x8a: return push_long1(u);
    case 'G': {
        if (need(u, 8) != MAE_OK) return MAE_ERR;
        uint64_t b = 0;
        for (int i = 0; i < 8; i++) b = (b << 8) | u->p[u->pos++]; /* big-endian */
        v = pk_new(u, PK_FLOAT);
        memcpy(&v->u.f, &b, 8);
        return push(u, v);
    }
    case 'X': return push_text(u, PK_STR, 4, 0);
    case 0x8c: return push_text(u, PK_STR, 1, 0);
    case 0x8d: return push_text(u, PK_STR, 8, 0);
    case 'T': return push_text(u, PK_STR, 4, 1);
    case 'U': return push_text(u, PK_STR, 1, 0);
    case 'B': return push_text(u, PK_BYTES, 4, 0);
    case 'C': return push_text(u, PK_BYTES, 1, 0);
    case '}': return push(u, pk_new(u, PK_DICT));
    case ']': return push(u, pk_new(u, PK_LIST));
    case ')': return push(u, pk_new(u, PK_TUPLE));
    case 0x8f: return push(u, pk_new(u, PK_SET));
    case 'd':
        if (pop_mark(u, &k) != MAE_OK) return MAE_ERR;
        v = pk_new(u, PK_DICT);
        if (set_items(u, v, k) != MAE_OK) return MAE_ERR;
        return push(u, v);
    case 'l':
    case 't':
    case 0x91: /* FROZENSET */
        if (pop_mark(u, &k) != MAE_OK) return MAE_ERR;
        return push(u, collect(u, op == 'l' ? PK_LIST : op == 't' ? PK_TUPLE : PK_SET, k));
    case 0x85: return tuple_n(u, 1);
    case 0x86: return tuple_n(u, 2);
    case 0x87: return tuple_n(u, 3);
    case 'a':
        if (u->sp - floor_sp(u) < 2) return pk_fail(u, "pickle stack underflow");
        return append_items(u, u->stack[u->sp - 2], u->sp - 1, PK_LIST);
    case 'e':
    case 0x90: /* ADDITEMS */
        if (pop_mark(u, &k) != MAE_OK) return MAE_ERR;
        if (k <= floor_sp(u)) return pk_fail(u, "pickle stack underflow");
        return append_items(u, u->stack[k - 1], k, op == 'e' ? PK_LIST : PK_SET);
    case 's':
        if (u->sp - floor_sp(u) < 3) return pk_fail(u, "pickle stack underflow");
        return set_items(u, u->stack[u->sp - 3], u->sp - 2);
    case 'u':
        if (pop_mark(u, &k) != MAE_OK) return MAE_ERR;
        if (k <= floor_sp(u)) return pk_fail(u, "pickle stack underflow");
        return set_items(u, u->stack[k - 1], k);
    case 'q':
        if (need(u, 1) != MAE_OK) return MAE_ERR;
        return memo_put(u, rd_le(u, 1));
    case 'r':
        if (need(u, 4) != MAE_OK) return MAE_ERR;
        return memo_put(u, rd_le(u, 4));
    case 0x94: return memo_put(u, u->memo_count);
    case 'h':
        if (need(u, 1) != MAE_OK) return MAE_ERR;
        return memo_get(u, rd_le(u, 1));
    case 'j':
        if (need(u, 4) != MAE_OK) return MAE_ERR;
        return memo_get(u, rd_le(u, 4));
    case 'c':
        if (read_line(u, mod, sizeof mod) != MAE_OK || read_line(u, name, sizeof name) != MAE_OK)
            return MAE_ERR;
        return pk_global(u, mod, name, &v) != MAE_OK ? MAE_ERR : push(u, v);
    case 0x93: return stack_global(u);
    case 'R':
    case 0x81: /* NEWOBJ */
        if (pop(u, &w) != MAE_OK || pop(u, &v) != MAE_OK) return MAE_ERR;
        if (w->type != PK_TUPLE)
            return pk_fail(u, "%s arguments are a %s, not a tuple", op == 'R' ? "REDUCE" :
                           "NEWOBJ", pk_type_name(w));
        if (pk_call(u, v, w, op == 0x81, &v) != MAE_OK) return MAE_ERR;
        return push(u, v);
    case 'b':
        if (pop(u, &w) != MAE_OK || top(u, &v) != MAE_OK) return MAE_ERR;
        return pk_build(u, v, w);
    case 'Q':
        if (pop(u, &w) != MAE_OK) return MAE_ERR;
        if (pk_persistent(u, w, &v) != MAE_OK) return MAE_ERR;
        return push(u, v);
    default: {
        const char *nm = op_name(op);
        if (nm && op >= 0x20 && op < 0x7f)
            return pk_fail(u, "unsupported pickle opcode '%c' (%s)", op, nm);
        if (nm) return pk_fail(u, "unsupported pickle opcode 0x%02x (%s)", op, nm);
        return pk_fail(u, "unknown pickle opcode 0x%02x (corrupt data?)", op);
    }
    }
}

int pk_load(pk_unpickler **up, const uint8_t *data, size_t len, const char *what,
            pk_persistent_fn persistent, void *ctx, pk_value **root, mae_error *err) {
    pk_unpickler *u = mae_xcalloc(1, sizeof *u);
    *up = u;
    u->p = data;
    u->len = len;
    u->what = what;
    u->persistent = persistent;
    u->ctx = ctx;
    u->err = err;
    u->marks = mae_xmalloc(PK_MAX_MARKS * sizeof *u->marks);
    *root = NULL;
    int done = 0;
    size_t budget = (len > (SIZE_MAX - (16u << 20)) / PK_MAX_EXPANSION ? SIZE_MAX
                     : len * PK_MAX_EXPANSION + (16u << 20));
    while (!done) {
        if (step(u, &done) != MAE_OK) return MAE_ERR;
        if (u->arena_bytes > budget)
            return pk_fail(u, "the pickle's %zu bytes build more than %zu MB of values "
                           "(a hostile file?)", len, budget >> 20);
    }
    *root = u->stack[u->sp - 1];
    return MAE_OK;
}
