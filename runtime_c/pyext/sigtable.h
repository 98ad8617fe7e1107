/* sigtable.h -- the launch cache of fastlaunch.c: argument signatures -> launch entries.
 *
 * A signature is a short array of int64 words that the hot path writes while it reads the
 * arguments (backend, then per parameter a tag and its specialization facts: a tensor's
 * dtype object, shape, strides and alignment; an int's width class; a constexpr's value).
 * String and float constexprs are kept as objects and compared with ==.
 * Equal signatures imply equal Python keys, so an entry found here is the kernel the Python
 * path would launch; the table is only finer than the JITFunction's dict, never coarser.
 * Looking up words avoids building, hashing, comparing and freeing a tuple of tuples on
 * every launch, which was about half of the launch's instructions.
 */
#ifndef PYPTO_SIGTABLE_H
#define PYPTO_SIGTABLE_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#define SIG_MAX_WORDS 1024
#define SIG_MAX_OBJS 64

typedef struct {
  int64_t w[SIG_MAX_WORDS];
  PyObject *obj[SIG_MAX_OBJS]; /* borrowed while building */
  int nw, nobj;
} signature;

typedef struct {
  uint64_t hash; /* 0: empty slot */
  int nw, nobj;
  int64_t *w;
  PyObject **obj;  /* owned references */
  PyObject *entry; /* owned: (program_address, mode, stack_bytes, raise_record) */
} sig_slot;

typedef struct {
  sig_slot *slots;
  size_t cap, used; /* cap is 0 or a power of two */
} sig_table;

static inline int sig_push(signature *s, int64_t v) {
  if (s->nw >= SIG_MAX_WORDS) return -1;
  s->w[s->nw++] = v;
  return 0;
}

static inline int sig_push_obj(signature *s, PyObject *o) {
  if (s->nobj >= SIG_MAX_OBJS) return -1;
  Py_hash_t h = PyObject_Hash(o);
  if (h == -1) return -1;
  s->obj[s->nobj++] = o;
  return sig_push(s, (int64_t)h);
}

static uint64_t sig_hash(const signature *s) {
  uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)s->nw;
  for (int k = 0; k < s->nw; k++) {
    h ^= (uint64_t)s->w[k];
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 32;
  }
  return h ? h : 1;
}

/* 1 if slot holds signature s, 0 if not, -1 on an error from ==. */
static int sig_equal(const sig_slot *slot, const signature *s, uint64_t hash) {
  if (slot->hash != hash || slot->nw != s->nw || slot->nobj != s->nobj) return 0;
  if (memcmp(slot->w, s->w, sizeof(int64_t) * (size_t)s->nw) != 0) return 0;
  for (int k = 0; k < s->nobj; k++) {
    if (slot->obj[k] == s->obj[k]) continue;
    int eq = PyObject_RichCompareBool(slot->obj[k], s->obj[k], Py_EQ);
    if (eq != 1) return eq;
  }
  return 1;
}

/* The entry for s (borrowed), or NULL: not there (no error set) or an error from ==. */
static PyObject *sig_find(const sig_table *t, const signature *s, uint64_t hash) {
  if (t->cap == 0) return NULL;
  for (size_t i = hash & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    const sig_slot *slot = &t->slots[i];
    if (slot->hash == 0) return NULL;
    int eq = sig_equal(slot, s, hash);
    if (eq != 0) return eq == 1 ? slot->entry : NULL;
  }
}

static void sig_place(sig_slot *slots, size_t cap, sig_slot item) {
  size_t i = item.hash & (cap - 1);
  while (slots[i].hash != 0) i = (i + 1) & (cap - 1);
  slots[i] = item;
}

/* Adds s -> entry (new references taken). 0, or -1 with MemoryError. */
static int sig_insert(sig_table *t, const signature *s, uint64_t hash, PyObject *entry) {
  if (2 * (t->used + 1) > t->cap) { /* keep the load under one half */
    size_t cap = t->cap ? 2 * t->cap : 8;
    sig_slot *grown = PyMem_Calloc(cap, sizeof(sig_slot));
    if (grown == NULL) return PyErr_NoMemory(), -1;
    for (size_t i = 0; i < t->cap; i++)
      if (t->slots[i].hash != 0) sig_place(grown, cap, t->slots[i]);
    PyMem_Free(t->slots);
    t->slots = grown;
    t->cap = cap;
  }
  sig_slot item = {hash, s->nw, s->nobj, NULL, NULL, entry};
  item.w = PyMem_Malloc(sizeof(int64_t) * (size_t)s->nw + 1);
  item.obj = PyMem_Malloc(sizeof(PyObject *) * (size_t)s->nobj + 1);
  if (item.w == NULL || item.obj == NULL) {
    PyMem_Free(item.w);
    PyMem_Free(item.obj);
    return PyErr_NoMemory(), -1;
  }
  memcpy(item.w, s->w, sizeof(int64_t) * (size_t)s->nw);
  for (int k = 0; k < s->nobj; k++) {
    Py_INCREF(s->obj[k]);
    item.obj[k] = s->obj[k];
  }
  Py_INCREF(entry);
  sig_place(t->slots, t->cap, item);
  t->used++;
  return 0;
}

static void sig_clear(sig_table *t) {
  sig_slot *slots = t->slots;
  size_t cap = t->cap;
  t->slots = NULL; /* detached first: a decref below may run Python code */
  t->cap = t->used = 0;
  for (size_t i = 0; i < cap; i++) {
    if (slots[i].hash == 0) continue;
    for (int k = 0; k < slots[i].nobj; k++) Py_DECREF(slots[i].obj[k]);
    Py_DECREF(slots[i].entry);
    PyMem_Free(slots[i].w);
    PyMem_Free(slots[i].obj);
  }
  PyMem_Free(slots);
}

static int sig_traverse(const sig_table *t, visitproc visit, void *arg) {
  for (size_t i = 0; i < t->cap; i++) {
    if (t->slots[i].hash == 0) continue;
    for (int k = 0; k < t->slots[i].nobj; k++) Py_VISIT(t->slots[i].obj[k]);
    Py_VISIT(t->slots[i].entry);
  }
  return 0;
}

#endif
