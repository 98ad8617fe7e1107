/* stack.h -- the shim's internal stack query (stack.c); not part of the ABI. */
#ifndef PYPTO_STACK_H
#define PYPTO_STACK_H

#include <stdint.h>

/* Bytes of stack left below the current frame of the calling thread; INT64_MAX if unknown.
   The thread's stack bounds are looked up once per thread. */
int64_t pypto_caller_stack_room(void);

#endif
