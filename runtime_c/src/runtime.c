/* runtime.c -- the pypto runtime shim: a persistent thread pool and pypto_launch.
 *
 * Shape of a launch (see pypto_runtime.h for the contract):
 *   - the threads take contiguous chunks of the grid's linear program range [0, total) from
 *     a shared counter, each chunk a fraction of what is left (guided scheduling, see grab);
 *   - the calling thread takes chunks too unless the programs need more stack than it may
 *     have; pool workers take the rest;
 *   - workers wait on a per-worker generation word: they spin briefly (Python launches come
 *     back to back, a microsecond apart; after a few us the spin yields the core), then park
 *     on a futex, so an idle pool costs no CPU;
 *   - a failing program lowers a shared "lowest failing index"; every thread stops before
 *     programs above it, so the error reported is always the failure with the lowest linear
 *     index, whatever the thread count (every program below it was run).
 */
#define _GNU_SOURCE
#define PYPTO_RUNTIME_BUILDING_SHIM
#include "pypto_runtime.h"
#include "stack.h"
#include "wait.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sched.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#define MIB ((int64_t)1 << 20)
#define INLINE_STACK_LIMIT (4 * MIB) /* programs up to this run on the caller's stack */
#define MAX_STACK (60 * MIB)         /* leaves 4 MiB of a worker stack for the call chain */
#define WORKER_STACK ((size_t)64 << 20)
#define CALLER_STACK_MARGIN (256 * 1024) /* room kept for whatever the caller's frames need */
#define MAX_WORKERS 1023
#define NO_FAILURE INT64_MAX

/* Kernels write large outputs with non-temporal stores, which are weakly ordered: a thread
   fences them once, after its last program of a launch, before it reports the launch done
   (a fence per program stalled each one until its row had reached memory). */
static inline void store_fence(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_sfence();
#else
  atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* ------------------------------------------------- floating-point environment ------- */

/* Workers run programs with the caller's rounding mode and FTZ/DAZ bits, so a launch gives
   the same answer inline and on the pool (e.g. after torch.set_flush_denormal). Only the
   control bits are copied, not the sticky exception flags. */
#if defined(__x86_64__)
#define FP_CONTROL_MASK 0xFFC0u
static inline unsigned fp_control_get(void) { return _mm_getcsr() & FP_CONTROL_MASK; }
static inline void fp_control_set(unsigned v) {
  unsigned cur = _mm_getcsr();
  if ((cur & FP_CONTROL_MASK) != v) _mm_setcsr((cur & ~FP_CONTROL_MASK) | v);
}
#elif defined(__aarch64__)
static inline unsigned fp_control_get(void) {
  uint64_t v;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
  return (unsigned)v;
}
static inline void fp_control_set(unsigned v) {
  if (fp_control_get() != v) {
    uint64_t w = v;
    __asm__ __volatile__("msr fpcr, %0" : : "r"(w));
  }
}
#else
static inline unsigned fp_control_get(void) { return 0; }
static inline void fp_control_set(unsigned v) { (void)v; }
#endif

/* ---------------------------------------------------------------- pool state --------- */

/* One worker; each is its own cache-line-aligned allocation so workers never share lines. */
typedef struct worker {
  atomic_uint go;       /* generation of the job to run next; written by the launcher */
  atomic_int sleeping;  /* parked in park(&go) */
  unsigned seen;        /* last generation this worker ran (worker-private) */
  int64_t fail;         /* linear index of its failing program, or NO_FAILURE */
  int index;            /* position in workers[] */
  pypto_error err;      /* its error slot */
} worker;

/* The job being launched. Written under launch_mu before the workers' go words are bumped
   (release), read by workers after they see the new generation (acquire). */
static struct {
  pypto_program_fn fn;
  const int64_t *iargs;
  const double *fargs;
  int64_t grid[3];
  unsigned fp_control;
  int nworkers; /* workers taking part in this job: workers[0 .. nworkers) */
  int64_t total;     /* programs in the grid */
  int64_t divisor;   /* a chunk is what is left over this (twice the threads taking part) */
  int64_t min_grain; /* and at least this many programs */
  _Alignas(64) _Atomic int64_t next; /* first program no thread has taken yet */
  _Alignas(64) _Atomic int64_t min_fail; /* lowest failing linear index so far */
  _Alignas(64) atomic_uint remaining;   /* workers that have not run out of chunks */
  atomic_int caller_sleeping;           /* the launcher is parked on `remaining` */
} job;

static pthread_mutex_t launch_mu = PTHREAD_MUTEX_INITIALIZER; /* one launch at a time */
static worker *workers[MAX_WORKERS];
static int nworkers;           /* workers started so far (the pool only grows) */
static unsigned generation;    /* bumped for every pool dispatch */
static pypto_error caller_err; /* the launching thread's error slot */

/* ---------------------------------------------------------------- running programs --- */

static void error_reset(pypto_error *err) {
  memset(err, 0, sizeof *err);
  err->param = -1;
}

static void error_set(pypto_error *err, int kind, const char *fmt, ...) {
  if (err == NULL) return;
  error_reset(err);
  err->kind = kind;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
}

/* Record that program f failed and make every thread skip programs above it. */
static void lower_min_fail(int64_t f) {
  int64_t cur = atomic_load(&job.min_fail);
  while (f < cur && !atomic_compare_exchange_weak(&job.min_fail, &cur, f)) {
  }
}

/* Run programs [begin, end) in linear order; return the index of the one that failed, or
   NO_FAILURE. Stops early when a lower-indexed program failed on another thread. */
static int64_t run_range(int64_t begin, int64_t end, pypto_error *err) {
  if (begin >= end) return NO_FAILURE;
  error_reset(err);
  const pypto_ctx ctx = {{job.grid[0], job.grid[1], job.grid[2]}, err};
  const pypto_program_fn fn = job.fn;
  const int64_t *iargs = job.iargs;
  const double *fargs = job.fargs;
  const int64_t g0 = job.grid[0], g1 = job.grid[1];
  /* Program ids advance like an odometer instead of dividing for every program. */
  int64_t p0 = begin % g0, p1 = (begin / g0) % g1, p2 = begin / (g0 * g1);
  for (int64_t f = begin; f < end; f++) {
    if (f > atomic_load_explicit(&job.min_fail, memory_order_relaxed)) break;
    int rc = fn(iargs, fargs, p0, p1, p2, &ctx);
    if (rc != 0) {
      if (err->kind <= PYPTO_OK || err->kind > PYPTO_ERR_OTHER) {
        /* The program failed without a usable record: keep what it said, name the code. */
        err->kind = (rc > PYPTO_OK && rc <= PYPTO_ERR_OTHER) ? rc : PYPTO_ERR_OTHER;
        if (err->message[0] == '\0')
          snprintf(err->message, sizeof err->message, "program returned %d", rc);
      }
      err->pid[0] = p0, err->pid[1] = p1, err->pid[2] = p2;
      lower_min_fail(f);
      return f;
    }
    if (++p0 == g0) {
      p0 = 0;
      if (++p1 == g1) p1 = 0, ++p2;
    }
  }
  return NO_FAILURE;
}

/* Wake-ups fan out as a binary tree (the launcher wakes workers 0 and 1, worker i wakes
   2i+2 and 2i+3): a wake is a syscall of several microseconds, and waking a big pool one
   by one from the launcher would serialize them all. Every go word of the job is stored
   before any worker can see its own (the launcher stores them last to first), so a parked
   child either sees its go or is seen sleeping here (Dekker, as in wait_change). */
static void wake_pair(int first) {
  for (int i = first; i < first + 2 && i < job.nworkers; i++)
    if (atomic_load(&workers[i]->sleeping)) unpark(&workers[i]->go);
}

/* Guided scheduling: a chunk is the programs from the shared counter on, a fraction of what
   is left. On a machine whose cores are shared with other work, a thread that loses its
   core for a while delays the launch by one chunk at most, where a static half would delay
   it by the whole time lost; the first chunks are big (few grabs of the shared line), the
   last small (the threads finish together). Chunks are taken in increasing order, so every
   program below a failing one is taken, and run, before the launch returns. */
static bool grab(int64_t *begin, int64_t *end) {
  int64_t cur = atomic_load_explicit(&job.next, memory_order_relaxed), n;
  do {
    if (cur >= job.total) return false;
    n = (job.total - cur) / job.divisor;
    if (n < job.min_grain) n = job.min_grain;
  } while (!atomic_compare_exchange_weak_explicit(&job.next, &cur, cur + n, memory_order_relaxed,
                                                  memory_order_relaxed));
  *begin = cur;
  *end = n < job.total - cur ? cur + n : job.total;
  return true;
}

/* Run chunks until none is left or a program fails; the failing index, or NO_FAILURE. */
static int64_t run_chunks(pypto_error *err) {
  int64_t b, e;
  while (grab(&b, &e)) {
    int64_t f = run_range(b, e, err);
    if (f != NO_FAILURE) return f;
  }
  return NO_FAILURE;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  for (;;) {
    w->seen = wait_change(&w->go, w->seen, &w->sleeping);
    wake_pair(2 * w->index + 2);
    fp_control_set(job.fp_control);
    w->fail = run_chunks(&w->err);
    store_fence();
    /* seq_cst RMW then load, against the launcher's store of caller_sleeping then load. */
    if (atomic_fetch_sub(&job.remaining, 1) == 1 && atomic_load(&job.caller_sleeping))
      unpark(&job.remaining);
  }
  return NULL;
}

/* Start workers until there are n (or as many as the system allows); return the count. */
static int ensure_workers(int n) {
  while (nworkers < n) {
    size_t size = (sizeof(worker) + 63) & ~(size_t)63;
    worker *w = aligned_alloc(64, size);
    if (w == NULL) break;
    memset(w, 0, size);
    atomic_init(&w->go, generation);
    w->seen = generation;
    w->index = nworkers;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* Block temporaries live on the stack; the 64 MiB is reserved, pages come on touch. */
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Workers block every signal so that signals keep going to the Python threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t tid;
    int rc = pthread_create(&tid, &attr, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      free(w);
      break;
    }
#if defined(__linux__) && defined(__GLIBC__)
    pthread_setname_np(tid, "pypto-worker");
#endif
    workers[nworkers++] = w;
  }
  return nworkers;
}

/* Run the grid on nthreads threads, the caller one of them when caller_runs. Returns the
   lowest failing index and points *winner at its record. */
static int64_t run_on_pool(int64_t total, int nthreads, bool caller_runs, pypto_error **winner) {
  int nw = caller_runs ? nthreads - 1 : nthreads;
  int have = ensure_workers(nw);
  if (have < nw) {
    /* Could not start enough threads: run with what there is. */
    if (have == 0 && !caller_runs) {
      error_set(&caller_err, PYPTO_ERR_OTHER, "could not start a worker thread");
      *winner = &caller_err;
      return 0;
    }
    nw = have;
    nthreads = caller_runs ? nw + 1 : nw;
  }
  generation++;
  job.nworkers = nw;
  job.total = total;
  job.divisor = 2 * (int64_t)nthreads;
  /* About 64 chunks per thread at the end: a small tail, and grabs stay rare. */
  job.min_grain = total / (64 * (int64_t)nthreads) + 1;
  atomic_store_explicit(&job.next, 0, memory_order_relaxed);
  atomic_store_explicit(&job.remaining, (unsigned)nw, memory_order_relaxed);
  atomic_store_explicit(&job.caller_sleeping, 0, memory_order_relaxed);
  for (int i = nw - 1; i >= 0; i--) { /* last to first: see wake_pair */
    worker *w = workers[i];
    w->fail = NO_FAILURE;
    atomic_store(&w->go, generation); /* seq_cst: publishes the job, pairs with sleeping */
  }
  wake_pair(0);
  int64_t best = NO_FAILURE;
  *winner = NULL;
  if (caller_runs) {
    best = run_chunks(&caller_err);
    store_fence();
    if (best != NO_FAILURE) *winner = &caller_err;
  }
  /* Join: spin, then park until the last worker is done. */
  spinner s = {0, 0};
  while (atomic_load_explicit(&job.remaining, memory_order_acquire) != 0 && spin_more(&s)) {
  }
  unsigned r;
  while ((r = atomic_load(&job.remaining)) != 0) {
    atomic_store(&job.caller_sleeping, 1);
    if ((r = atomic_load(&job.remaining)) == 0) break;
    park(&job.remaining, r);
  }
  for (int i = 0; i < nw; i++) {
    if (workers[i]->fail < best) {
      best = workers[i]->fail;
      *winner = &workers[i]->err;
    }
  }
  return best;
}

/* ---------------------------------------------------------------- public API --------- */

int32_t pypto_abi_version(void) { return PYPTO_ABI_VERSION; }

int32_t pypto_num_cores(void) {
  /* Cached: affinity rarely changes and a syscall per launch would cost more than the launch. */
  static atomic_int cached;
  int n = atomic_load_explicit(&cached, memory_order_relaxed);
  if (n > 0) return n;
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
#endif
  if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (n <= 0) n = 1;
  atomic_store_explicit(&cached, n, memory_order_relaxed);
  return n;
}

int pypto_launch(pypto_program_fn fn, const int64_t *iargs, const double *fargs, int64_t g0,
                 int64_t g1, int64_t g2, int32_t num_threads, int32_t mode, int64_t stack_bytes,
                 pypto_error *err) {
  if (fn == NULL) {
    error_set(err, PYPTO_ERR_OTHER, "pypto_launch: no program function");
    return PYPTO_ERR_OTHER;
  }
  if (g0 < 0 || g1 < 0 || g2 < 0) {
    error_set(err, PYPTO_ERR_OTHER, "pypto_launch: negative grid (%lld, %lld, %lld)",
              (long long)g0, (long long)g1, (long long)g2);
    return PYPTO_ERR_OTHER;
  }
  if (mode != 0 && mode != 1) {
    error_set(err, PYPTO_ERR_OTHER, "pypto_launch: unknown mode %d", (int)mode);
    return PYPTO_ERR_OTHER;
  }
  if (stack_bytes < 0 || stack_bytes > MAX_STACK) {
    error_set(err, PYPTO_ERR_OTHER,
              "kernel needs %lld bytes of stack per program; the runtime allows at most %lld "
              "(use smaller blocks)",
              (long long)stack_bytes, (long long)MAX_STACK);
    return PYPTO_ERR_OTHER;
  }
  if (g0 == 0 || g1 == 0 || g2 == 0) return PYPTO_OK;
  if (g1 > INT64_MAX / g0 || g2 > INT64_MAX / (g0 * g1)) {
    error_set(err, PYPTO_ERR_OTHER, "pypto_launch: grid (%lld, %lld, %lld) is too large",
              (long long)g0, (long long)g1, (long long)g2);
    return PYPTO_ERR_OTHER;
  }
  const int64_t total = g0 * g1 * g2;

  int64_t nthreads = mode == 1 ? 1 : (num_threads <= 0 ? pypto_num_cores() : num_threads);
  if (nthreads > total) nthreads = total;
  if (nthreads > MAX_WORKERS + 1) nthreads = MAX_WORKERS + 1;
  const bool caller_runs =
      stack_bytes <= INLINE_STACK_LIMIT && stack_bytes + CALLER_STACK_MARGIN <= pypto_caller_stack_room();

  pthread_mutex_lock(&launch_mu);
  job.fn = fn;
  job.iargs = iargs;
  job.fargs = fargs;
  job.grid[0] = g0, job.grid[1] = g1, job.grid[2] = g2;
  job.fp_control = fp_control_get();
  atomic_store_explicit(&job.min_fail, NO_FAILURE, memory_order_relaxed);

  pypto_error *winner = &caller_err;
  int64_t failed;
  if (nthreads == 1 && caller_runs) {
    failed = run_range(0, total, &caller_err); /* inline: no thread hand-off at all */
    store_fence();
  } else {
    failed = run_on_pool(total, (int)nthreads, caller_runs, &winner);
  }

  int rc = PYPTO_OK;
  if (failed != NO_FAILURE) {
    rc = winner->kind;
    if (err != NULL) *err = *winner;
  }
  pthread_mutex_unlock(&launch_mu);
  return rc;
}

/* ---------------------------------------------------------------- fork safety -------- */

/* fork() copies only the calling thread. Holding launch_mu across fork means no launch is
   half-done in the child; the child then forgets the (non-existent) workers and builds a new
   pool on its next parallel launch. The old workers' stacks stay mapped but untouched. */
static void atfork_prepare(void) { pthread_mutex_lock(&launch_mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&launch_mu); }
static void atfork_child(void) {
  for (int i = 0; i < nworkers; i++) {
    free(workers[i]);
    workers[i] = NULL;
  }
  nworkers = 0;
  atomic_store(&job.remaining, 0);
  atomic_store(&job.caller_sleeping, 0);
#ifndef __linux__
  pthread_mutex_init(&park_mu, NULL);
  pthread_cond_init(&park_cv, NULL);
#endif
  pthread_mutex_init(&launch_mu, NULL);
}

__attribute__((constructor)) static void pypto_runtime_init(void) {
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}
