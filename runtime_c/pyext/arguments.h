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

/* The five reads of a tensor, through torch.Tensor's own descriptors: found along the MRO
 * once per version of the class (tp_version_tag changes whenever the class or a base is
 * modified), then called directly, which skips PyObject_GetAttr's lookup and its search of
 * the instance's attributes on every read. The C getters and methods are torch's, as
 * `t.shape` or `t.stride()` would call them; a descriptor of another kind (the class
 * patched from Python) is read the generic way. */
enum { READ_IS_CPU, READ_DATA_PTR, READ_SHAPE, READ_STRIDE, READ_DTYPE, NREADS };
static const char *const read_names[NREADS] = {"is_cpu", "data_ptr", "shape", "stride", "dtype"};
static const int read_is_call[NREADS] = {0, 1, 0, 1, 0};
static PyObject *read_name[NREADS], *read_descr[NREADS];
static unsigned int read_tag; /* tensor_type's version the descriptors were found for */

static int arguments_init(void) {
  for (int k = 0; k < NREADS; k++)
    if ((read_name[k] = PyUnicode_InternFromString(read_names[k])) == NULL) return -1;
  return 0;
}

static void find_descriptors(void) {
  for (int k = 0; k < NREADS; k++) {
    PyObject *d = _PyType_Lookup(tensor_type, read_name[k]); /* borrowed; no error set */
    int usable = d != NULL && (read_is_call[k] ? Py_IS_TYPE(d, &PyMethodDescr_Type)
                                               : Py_IS_TYPE(d, &PyGetSetDescr_Type));
    Py_XSETREF(read_descr[k], usable ? Py_NewRef(d) : NULL);
  }
  read_tag = tensor_type->tp_version_tag; /* valid now: the lookup assigned one */
}

/* `a.<name>` or `a.<name>()` for read k; a new reference, NULL with an exception set. */
static PyObject *tensor_read(PyObject *a, int k) {
  if (read_tag == 0 || read_tag != tensor_type->tp_version_tag) find_descriptors();
  PyObject *d = read_descr[k];
  if (d == NULL)
    return read_is_call[k] ? PyObject_CallMethodNoArgs(a, read_name[k])
                           : PyObject_GetAttr(a, read_name[k]);
  Py_INCREF(d); /* torch may run Python code (a torch function mode) that patches the class */
  PyObject *r = read_is_call[k] ? PyObject_Vectorcall(d, &a, 1, NULL)
                                : Py_TYPE(d)->tp_descr_get(d, a, (PyObject *)Py_TYPE(a));
  Py_DECREF(d);
  return r;
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
  PyObject *is_cpu = tensor_read(a, READ_IS_CPU);
  if (is_cpu == NULL) return -1;
  Py_DECREF(is_cpu);
  if (is_cpu != Py_True) return 0; /* Python raises the "move it with .cpu()" error */
  PyObject *ptr_obj = tensor_read(a, READ_DATA_PTR);
  if (ptr_obj == NULL) return -1;
  long long ptr = PyLong_AsLongLong(ptr_obj);
  Py_DECREF(ptr_obj);
  if (ptr == -1 && PyErr_Occurred()) return -1;
  PyObject *shape = tensor_read(a, READ_SHAPE);
  PyObject *strides = shape ? tensor_read(a, READ_STRIDE) : NULL;
  PyObject *dtype = strides ? tensor_read(a, READ_DTYPE) : NULL;
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
