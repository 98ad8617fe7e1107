/* pypto_runtime.h -- the ABI between generated kernels, the runtime shim and Python.
 *
 * Three parties agree on this file:
 *   - generated kernel .so files include it and export pypto_program / pypto_stack_bytes /
 *     pypto_kernel_abi (they do NOT link against the shim: the shim receives pypto_program as
 *     a function pointer, so kernels and shim can be rebuilt independently);
 *   - the shim (runtime_c/src) implements pypto_launch and the thread pool;
 *   - Python binds both through cffi in ABI mode (pypto_jit/runtime/shim.py repeats these
 *     declarations in its cdef, so any change here must be mirrored there and must bump
 *     PYPTO_ABI_VERSION).
 */
#ifndef PYPTO_RUNTIME_H
#define PYPTO_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PYPTO_ABI_VERSION 2

/* Symbols that must stay visible even when a file is built with -fvisibility=hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define PYPTO_EXPORT __attribute__((visibility("default")))
#else
#define PYPTO_EXPORT
#endif

enum {
  PYPTO_OK = 0,
  PYPTO_ERR_OOB = 1,    /* out-of-bounds load or store (sim) */
  PYPTO_ERR_RACE = 2,   /* two programs stored to one element without an atomic (sim) */
  PYPTO_ERR_ASSERT = 3, /* device_assert failed */
  PYPTO_ERR_OTHER = 4   /* anything else, including a launch the runtime refused */
};

/* A structured run-time error. 256 bytes, no padding holes: the layout is part of the ABI. */
typedef struct pypto_error {
  int32_t kind;    /* one of the enum above */
  int32_t line;    /* kernel source line (1-based), 0 if unknown */
  int32_t col;     /* 0-based column */
  int32_t param;   /* kernel parameter index, -1 if none */
  int64_t pid[3];  /* program id of the failing program (filled in by the shim) */
  int64_t index;   /* offending element offset */
  int64_t extent;  /* valid extent [0, extent) of that tensor */
  char message[200];
} pypto_error;

typedef struct pypto_ctx {
  int64_t grid[3];  /* number of programs along each axis */
  pypto_error *err; /* this worker's error slot; a failing program fills it and returns nonzero */
} pypto_ctx;

/* One program of the grid. Returns 0 on success; nonzero after filling *ctx->err. */
typedef int (*pypto_program_fn)(const int64_t *iargs, const double *fargs, int64_t pid0,
                                int64_t pid1, int64_t pid2, const pypto_ctx *ctx);

/* ---- implemented by the shim (libpypto_runtime.so) ------------------------------------ */

/* Run every program of the grid. mode 0 = parallel on the pool; mode 1 = sequential, in
   linear order, on the calling thread (the simulator). Returns PYPTO_OK or the kind of the first
   error; *err then holds the record of the failing program with the lowest linear index among
   those that failed. Linear index f in [0, g0*g1*g2): pid0 = f % g0, pid1 = (f / g0) % g1,
   pid2 = f / (g0 * g1).
   num_threads <= 0 means one thread per core; never more threads than programs.
   stack_bytes is what one program needs on its stack (pypto_stack_bytes() of the kernel):
   up to 4 MiB a program may run on the calling thread, above that only on pool workers
   (64 MiB stacks); above 60 MiB the launch is refused with PYPTO_ERR_OTHER.
   Every thread that ran programs fences stores (SFENCE) after its last one, before the
   launch returns: programs may write with non-temporal stores and leave them unfenced.
   On success *err is left untouched. err may be NULL. */
PYPTO_EXPORT int pypto_launch(pypto_program_fn fn, const int64_t *iargs, const double *fargs,
                              int64_t g0, int64_t g1, int64_t g2, int32_t num_threads,
                              int32_t mode, int64_t stack_bytes, pypto_error *err);

/* CPUs this process may run on (affinity mask), at least 1. */
PYPTO_EXPORT int32_t pypto_num_cores(void);

/* == PYPTO_ABI_VERSION of the shim that was built. */
PYPTO_EXPORT int32_t pypto_abi_version(void);

/* ---- exported by every generated kernel .so ------------------------------------------ */
#ifndef PYPTO_RUNTIME_BUILDING_SHIM
PYPTO_EXPORT int pypto_program(const int64_t *iargs, const double *fargs, int64_t pid0,
                               int64_t pid1, int64_t pid2, const pypto_ctx *ctx);
PYPTO_EXPORT int64_t pypto_stack_bytes(void); /* stack one program needs (block temporaries) */
PYPTO_EXPORT int32_t pypto_kernel_abi(void);  /* == PYPTO_ABI_VERSION */
#endif

#ifdef __cplusplus
}
#endif

#endif /* PYPTO_RUNTIME_H */
