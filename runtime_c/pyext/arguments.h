/* arguments.h -- fastlaunch.c's reading of launch arguments: the ABI slots the kernel gets
 * (pypto_runtime.h: a tensor is its pointer, shape and strides; ints and bools are int64
 * slots, floats double slots) and the signature words that find the kernel (sigtable.h).
 * Only the common argument kinds are read here; for anything else the caller hands the
 * launch to Python. One translation unit includes this file. */
#ifndef PYPTO_ARGUMENTS_H
#define PYPTO_ARGUMENTS_H

#include <Python.h>
#include <stdint.h>

#include "sigtable.h"

#define MAX_ISLOTS 512
#define MAX_FSLOTS 64

static PyTypeObject *tensor_type; /* torch.Tensor, once known (set_tensor_type) */
static PyObject *str_data_ptr, *str_shape, *str_stride, *str_dtype, *str_is_cpu;

static int arguments_init(void) {
  struct {
    PyObject **slot;
    const char *text;
  } strings[] = {{&str_data_ptr, "data_ptr"}, {&str_shape, "shape"}, {&str_stride, "stride"},
                 {&str_dtype, "dtype"},       {&str_is_cpu, "is_cpu"}};
  for (size_t k = 0; k < sizeof strings / sizeof strings[0]; k++)
    if ((*strings[k].slot = PyUnicode_InternFromString(strings[k].text)) == NULL) return -1;
  return 0;
}

typedef struct {
  int64_t i[MAX_ISLOTS];
  double f[MAX_FSLOTS];
  int ni, nf;
} slots;

static int push_int(slots *s, int64_t v) {
  if (s->ni >= MAX_ISLOTS) return -1;
  s->i[s->ni++] = v;
  return 0;
}

enum { TAG_NONE = 1, TAG_TENSOR, TAG_INT, TAG_FLOAT, TAG_BOOL, TAG_CINT, TAG_CBOOL, TAG_COBJ };

/* Appends a tuple of ints to both the slots and the signature. */
static int push_dims(slots *s, signature *sig, PyObject *tuple) {
  Py_ssize_t n = PyTuple_GET_SIZE(tuple);
  if (sig_push(sig, n)) return -1;
  for (Py_ssize_t k = 0; k < n; k++) {
    long long v = PyLong_AsLongLong(PyTuple_GET_ITEM(tuple, k));
    if ((v == -1 && PyErr_Occurred()) || push_int(s, v) || sig_push(sig, v)) return -1;
  }
  return 0;
}

/* The hot path's reading of one CPU torch tensor: slots and signature words. */
static int tensor_sig(PyObject *a, slots *s, signature *sig) {
  PyObject *is_cpu = PyObject_GetAttr(a, str_is_cpu);
  if (is_cpu == NULL) return -1;
  Py_DECREF(is_cpu);
  if (is_cpu != Py_True) return 0; /* Python raises the "move it with .cpu()" error */
  PyObject *ptr_obj = PyObject_CallMethodNoArgs(a, str_data_ptr);
  if (ptr_obj == NULL) return -1;
  long long ptr = PyLong_AsLongLong(ptr_obj);
  Py_DECREF(ptr_obj);
  if (ptr == -1 && PyErr_Occurred()) return -1;
  PyObject *shape = PyObject_GetAttr(a, str_shape);
  PyObject *strides = shape ? PyObject_CallMethodNoArgs(a, str_stride) : NULL;
  PyObject *dtype = strides ? PyObject_GetAttr(a, str_dtype) : NULL;
  int ok = dtype != NULL && PyTuple_Check(shape) && PyTuple_Check(strides) &&
           push_int(s, ptr) == 0 && sig_push(sig, TAG_TENSOR) == 0 &&
           sig_push(sig, (int64_t)(uintptr_t)dtype) == 0 && /* torch dtypes are singletons */
           push_dims(s, sig, shape) == 0 && push_dims(s, sig, strides) == 0 &&
           sig_push(sig, (ptr & 15) == 0) == 0;
  Py_XDECREF(shape);
  Py_XDECREF(strides);
  Py_XDECREF(dtype);
  return ok ? 1 : PyErr_Occurred() ? -1 : 0;
}

/* One argument's slots and signature words: 1 done, 0 "Python must do it", -1 error. */
static int arg_sig(PyObject *a, int is_constexpr, slots *s, signature *sig) {
  PyTypeObject *t = Py_TYPE(a);
  if (is_constexpr) {
    int overflow = 0;
    if (t == &PyLong_Type) {
      long long v = PyLong_AsLongLongAndOverflow(a, &overflow);
      if (!overflow) return sig_push(sig, TAG_CINT) || sig_push(sig, v) ? 0 : 1;
      PyErr_Clear();
    }
    if (t == &PyBool_Type) return sig_push(sig, TAG_CBOOL) || sig_push(sig, a == Py_True) ? 0 : 1;
    if (a == Py_None) return sig_push(sig, TAG_NONE) ? 0 : 1;
    /* Strings and floats hash and compare in C, without running Python code that could
       change the table under a lookup; other constexprs take the Python path. */
    if (t != &PyUnicode_Type && t != &PyFloat_Type) return 0;
    return sig_push(sig, TAG_COBJ) || sig_push_obj(sig, a) ? 0 : 1;
  }
  if (t == tensor_type) return tensor_sig(a, s, sig);
  if (t == &PyLong_Type) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(a, &overflow);
    if (overflow || push_int(s, v)) return 0;
    int wide = v < INT32_MIN || v > INT32_MAX;
    return sig_push(sig, TAG_INT) || sig_push(sig, 4 * wide + 2 * (!wide && v == 1) + (v % 16 == 0))
               ? 0 : 1;
  }
  if (t == &PyFloat_Type) {
    if (s->nf >= MAX_FSLOTS) return 0;
    s->f[s->nf++] = PyFloat_AS_DOUBLE(a);
    return sig_push(sig, TAG_FLOAT) ? 0 : 1;
  }
  if (t == &PyBool_Type) return push_int(s, a == Py_True) || sig_push(sig, TAG_BOOL) ? 0 : 1;
  if (a == Py_None) return sig_push(sig, TAG_NONE) ? 0 : 1;
  return 0;
}

#endif
