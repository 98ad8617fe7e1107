/* wait.h -- how the shim's threads wait for each other: a bounded spin, then a park on a
   futex (a condvar elsewhere); internal to runtime.c, not part of the ABI. */
#ifndef PYPTO_WAIT_H
#define PYPTO_WAIT_H

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#define SPIN_NS 100000  /* how long a waiter spins before it parks (100 us) */
#define SPIN_PAUSES 128 /* pure pause rounds before a waiter starts yielding (a few us) */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#else
  atomic_signal_fence(memory_order_seq_cst);
#endif
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A bounded spin: call spin_more() in a loop; it returns false once the budget is spent.
   The first SPIN_PAUSES rounds only pause (a hand-off between busy threads on different
   cores takes well under a microsecond). After that every round yields the CPU: the
   scheduler often queues a freshly woken thread on the waker's core, and a waiter that spun
   without yielding would keep the very thread it waits for off that core. */
typedef struct {
  int64_t deadline;
  unsigned iter;
} spinner;

static bool spin_more(spinner *s) {
  if (++s->iter < SPIN_PAUSES) {
    cpu_relax();
    return true;
  }
  sched_yield();
  int64_t t = now_ns();
  if (s->deadline == 0) s->deadline = t + SPIN_NS;
  return t < s->deadline;
}

#ifdef __linux__
static void park(atomic_uint *word, unsigned old) {
  /* Returns at once if *word != old; spurious returns are fine, callers loop. */
  syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, old, NULL, NULL, 0);
}
static void unpark(atomic_uint *word) {
  syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
#else
/* Portable fallback: one process-wide condvar. Wakers change the word before unpark(), and
   the waiter re-checks it under the mutex, so no wake-up is lost. */
static pthread_mutex_t park_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cv = PTHREAD_COND_INITIALIZER;
static void park(atomic_uint *word, unsigned old) {
  pthread_mutex_lock(&park_mu);
  if (atomic_load(word) == old) pthread_cond_wait(&park_cv, &park_mu);
  pthread_mutex_unlock(&park_mu);
}
static void unpark(atomic_uint *word) {
  (void)word;
  pthread_mutex_lock(&park_mu);
  pthread_cond_broadcast(&park_cv);
  pthread_mutex_unlock(&park_mu);
}
#endif

/* Wait until *word != old: spin, then park. *sleeping tells a waker that it must call
   unpark(). The store to *sleeping and the re-load of *word are seq_cst, as are the waker's
   store to *word and load of *sleeping (Dekker): at least one side sees the other. */
static unsigned wait_change(atomic_uint *word, unsigned old, atomic_int *sleeping) {
  spinner s = {0, 0};
  unsigned v;
  while ((v = atomic_load_explicit(word, memory_order_acquire)) == old && spin_more(&s)) {
  }
  while (v == old) {
    atomic_store(sleeping, 1);
    v = atomic_load(word);
    if (v != old) break;
    park(word, old);
    v = atomic_load(word);
  }
  atomic_store_explicit(sleeping, 0, memory_order_relaxed);
  return v;
}

#endif
