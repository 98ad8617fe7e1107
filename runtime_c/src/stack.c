/* stack.c -- how much stack the calling thread has left (runtime.c runs a program on the
 * caller's stack only when it fits with room to spare). */
#define _GNU_SOURCE
#include "stack.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#if defined(__GLIBC__) && defined(__linux__)
extern void *__libc_stack_end;

/* The lowest address the main thread's stack may grow to, or 0 if unknown. It grows down
   from just above __libc_stack_end by at most RLIMIT_STACK; pthread_getattr_np would make
   glibc parse /proc/self/maps for this (half a millisecond of a process's first launch). */
static uintptr_t main_stack_lo(void) {
  struct rlimit rl;
  if (getpid() != (pid_t)syscall(SYS_gettid)) return 0; /* not the main thread */
  if (getrlimit(RLIMIT_STACK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
  /* The limit counts from the top of the mapping, a few pages above __libc_stack_end:
     64 KiB of slack keeps the estimate on the safe side of glibc's own answer. */
  uintptr_t top = (uintptr_t)__libc_stack_end;
  return top > rl.rlim_cur ? top - (uintptr_t)rl.rlim_cur + ((uintptr_t)64 << 10) : 0;
}
#else
static uintptr_t main_stack_lo(void) { return 0; }
#endif

/* Bytes of stack left below the current frame of the calling thread; INT64_MAX if unknown.
   The thread's stack bounds are looked up once per thread (pthread_getattr_np is slow). */
int64_t pypto_caller_stack_room(void) {
#if defined(__GLIBC__)
  static _Thread_local uintptr_t stack_lo; /* 0: not looked up yet; 1: unknown */
  if (stack_lo == 0) stack_lo = main_stack_lo();
  if (stack_lo == 0) {
    pthread_attr_t attr;
    void *addr = NULL;
    size_t size = 0;
    stack_lo = 1;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      if (pthread_attr_getstack(&attr, &addr, &size) == 0 && addr != NULL)
        stack_lo = (uintptr_t)addr;
      pthread_attr_destroy(&attr);
    }
  }
  if (stack_lo > 1) {
    char here;
    return (int64_t)((uintptr_t)&here - stack_lo);
  }
#endif
  return INT64_MAX;
}
