/* fastlaunch.c -- the cache-hit launch path of @pypto.jit kernels, as a CPython extension.
 *
 * `kernel[grid](*args, **kwargs)` on a hit does, in C, what the Python launcher in
 * pypto_jit/jit.py does: bind the arguments to the kernel's parameters, fill the ABI slots
 * (pypto_runtime.h), find the compiled kernel, and call the shim's pypto_launch with the GIL
 * released. Kernels are found by a signature of the arguments (sigtable.h); a signature seen
 * for the first time asks Python for the kernel, which keys and compiles as it always does.
 *
 * Anything unusual goes back to Python unchanged: an argument that is not a CPU torch tensor,
 * an int, a float, a bool or None; a binding problem; an unknown backend; the interpret
 * backend. The Python side (`slow`) then raises the proper error or launches, so every error
 * message has one author. This file only has to be right about the common case.
 *
 * Python objects (pypto_jit/runtime/fastpath.py builds them):
 *   Dispatcher(names, constexpr_flags, defaults, missing, backend, resolve, slow, check_grid,
 *              launch_address)
 *     resolve(bound, backend) -> the CompiledKernel the Python path would launch; its
 *       `_fast_entry` is (program_address, mode, stack_bytes, raise_record) or None
 *     slow(grid, *args, **kwargs)  -> the Python launch (errors, other backends)
 *     check_grid(grid) -> (g0, g1, g2) or raises
 *   dispatcher[grid] -> a launcher; calling it launches. dispatcher.forget() drops the
 *   signatures seen (the JITFunction calls it when its dict of kernels changes).
 *   set_tensor_type(torch.Tensor) once torch is imported.
 *   runtime_info(path) / kernel_info(path): dlopen the shim / a kernel and read what a launch
 *   needs, so that a warm start loads neither through cffi.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "pypto_runtime.h"
#include "arguments.h"
#include "sigtable.h"

#define MAX_PARAMS 64

typedef int (*launch_fn)(pypto_program_fn, const int64_t *, const double *, int64_t, int64_t,
                         int64_t, int32_t, int32_t, int64_t, pypto_error *);

static PyObject *str_entry, *str_cpu, *str_sim;

typedef struct {
  PyObject_HEAD
  Py_ssize_t nparams;
  PyObject *names;    /* tuple of str */
  char constexpr_[MAX_PARAMS];
  PyObject *defaults; /* tuple: a default, or NULL-marker `missing` */
  PyObject *missing;  /* the marker for "no default" */
  PyObject *backend;  /* str or None */
  PyObject *resolve, *slow, *check_grid;
  launch_fn launch;
  PyObject *last;     /* the launcher of the last grid, reused when the grid repeats */
  sig_table table;    /* signature -> entry, for the signatures launched before */
} Dispatcher;

typedef struct {
  PyObject_HEAD
  Dispatcher *d;
  PyObject *grid;
  vectorcallfunc vectorcall;
} Launcher;

static PyTypeObject LauncherType;

/* ------------------------------------------------------------------------ the launch ----- */

/* Binds vectorcall arguments to parameters. Returns 1 on success, 0 if Python must handle
   the call (a missing or unknown argument), with *num_threads and *backend filled in. */
static int bind(Dispatcher *d, PyObject *const *args, size_t nargs, PyObject *kwnames,
                PyObject **bound, PyObject **num_threads, PyObject **backend) {
  Py_ssize_t np = d->nparams;
  if ((Py_ssize_t)nargs > np) return 0;
  for (Py_ssize_t i = 0; i < np; i++) bound[i] = i < (Py_ssize_t)nargs ? args[i] : NULL;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < nkw; k++) {
    PyObject *name = PyTuple_GET_ITEM(kwnames, k), *value = args[nargs + k];
    Py_ssize_t i = 0;
    while (i < np && PyTuple_GET_ITEM(d->names, i) != name) i++;
    if (i == np) /* not the same interned object: compare text */
      for (i = 0; i < np && PyUnicode_Compare(PyTuple_GET_ITEM(d->names, i), name) != 0; i++) {
      }
    if (i < np) {
      if (bound[i] != NULL) return 0; /* given twice */
      bound[i] = value;
    } else if (PyUnicode_CompareWithASCIIString(name, "num_threads") == 0) {
      *num_threads = value;
    } else if (PyUnicode_CompareWithASCIIString(name, "backend") == 0) {
      *backend = value;
    } else {
      return 0;
    }
  }
  for (Py_ssize_t i = 0; i < np; i++) {
    if (bound[i] != NULL) continue;
    PyObject *def = PyTuple_GET_ITEM(d->defaults, i);
    if (def == d->missing) return 0;
    bound[i] = def;
  }
  return 1;
}

/* The backend name if it is one this file launches ("cpu" or "sim"), else NULL. */
static PyObject *fast_backend(Dispatcher *d, PyObject *requested) {
  const char *name;
  if (requested != NULL && requested != Py_None) {
    if (!PyUnicode_Check(requested)) return NULL;
    name = PyUnicode_AsUTF8(requested);
    if (name == NULL) {
      PyErr_Clear();
      return NULL;
    }
  } else if (d->backend != Py_None) {
    name = PyUnicode_AsUTF8(d->backend);
  } else {
    name = getenv("PYPTO_BACKEND"); /* os.environ writes go through putenv */
    if (name == NULL) name = "cpu";
  }
  if (name == NULL) return NULL;
  if (strcmp(name, "cpu") == 0) return str_cpu;
  if (strcmp(name, "sim") == 0) return str_sim;
  return NULL;
}

/* grid -> three non-negative ints; a callable grid is called with {name: argument}. */
static int grid_dims(Dispatcher *d, PyObject *grid, PyObject **bound, int64_t g[3]) {
  PyObject *owned = NULL;
  if (!PyTuple_CheckExact(grid) && PyCallable_Check(grid)) {
    PyObject *meta = PyDict_New();
    if (meta == NULL) return -1;
    for (Py_ssize_t i = 0; i < d->nparams; i++)
      if (PyDict_SetItem(meta, PyTuple_GET_ITEM(d->names, i), bound[i]) < 0) {
        Py_DECREF(meta);
        return -1;
      }
    grid = owned = PyObject_CallOneArg(grid, meta);
    Py_DECREF(meta);
    if (grid == NULL) return -1;
  }
  Py_ssize_t n = PyTuple_CheckExact(grid) ? PyTuple_GET_SIZE(grid) : 0;
  int ok = n >= 1 && n <= 3;
  g[0] = g[1] = g[2] = 1;
  for (Py_ssize_t k = 0; ok && k < n; k++) {
    PyObject *v = PyTuple_GET_ITEM(grid, k);
    int overflow = 0;
    g[k] = PyLong_CheckExact(v) ? PyLong_AsLongLongAndOverflow(v, &overflow) : -1;
    ok = !overflow && g[k] >= 0;
  }
  if (!ok) { /* let Python normalize it (numpy ints, lists) or raise its error */
    PyErr_Clear();
    PyObject *r = PyObject_CallOneArg(d->check_grid, grid);
    ok = r != NULL && PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 3;
    for (int k = 0; ok && k < 3; k++) g[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(r, k));
    Py_XDECREF(r);
    if (!ok && !PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bad grid");
  }
  Py_XDECREF(owned);
  return ok && !PyErr_Occurred() ? 0 : -1;
}

/* The Python launch: slow(grid, *args, **kwargs). */
static PyObject *call_slow(Launcher *self, PyObject *const *args, size_t nargs,
                           PyObject *kwnames) {
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  PyObject *small[MAX_PARAMS + 8];
  PyObject **all = small;
  size_t total = nargs + nkw + 1;
  if (total > sizeof small / sizeof small[0]) {
    all = PyMem_Malloc(total * sizeof(PyObject *));
    if (all == NULL) return PyErr_NoMemory();
  }
  all[0] = self->grid;
  memcpy(all + 1, args, (nargs + nkw) * sizeof(PyObject *));
  PyObject *r = PyObject_Vectorcall(self->d->slow, all, nargs + 1, kwnames);
  if (all != small) PyMem_Free(all);
  return r;
}

/* A signature not seen before: resolve(bound, backend) finds or compiles the kernel the
   Python path would launch (it builds the Python key, so the key has one author). Returns
   the kernel's `_fast_entry` (a new reference; None if C cannot launch it) or NULL. */
static PyObject *resolve_miss(Dispatcher *d, PyObject **bound, PyObject *backend) {
  PyObject *bt = PyTuple_New(d->nparams);
  if (bt == NULL) return NULL;
  for (Py_ssize_t i = 0; i < d->nparams; i++) {
    Py_INCREF(bound[i]);
    PyTuple_SET_ITEM(bt, i, bound[i]);
  }
  PyObject *kernel = PyObject_CallFunctionObjArgs(d->resolve, bt, backend, NULL);
  Py_DECREF(bt);
  if (kernel == NULL) return NULL;
  PyObject *entry = PyObject_GetAttr(kernel, str_entry);
  Py_DECREF(kernel);
  if (entry != NULL && entry != Py_None && (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 4)) {
    Py_DECREF(entry);
    PyErr_SetString(PyExc_TypeError, "fastlaunch: a kernel's _fast_entry must be a 4-tuple");
    return NULL;
  }
  return entry;
}

static PyObject *launcher_call(PyObject *obj, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames) {
  Launcher *self = (Launcher *)obj;
  Dispatcher *d = self->d;
  size_t nargs = PyVectorcall_NARGS(nargsf);
  PyObject *bound[MAX_PARAMS];
  PyObject *num_threads = NULL, *requested = NULL;
  if (!bind(d, args, nargs, kwnames, bound, &num_threads, &requested))
    return call_slow(self, args, nargs, kwnames);
  PyObject *backend = fast_backend(d, requested);
  int32_t nthreads = 0;
  if (num_threads != NULL && num_threads != Py_None) {
    nthreads = PyLong_CheckExact(num_threads) ? (int32_t)PyLong_AsLong(num_threads) : -1;
    if (nthreads < 0 || PyErr_Occurred()) backend = NULL; /* Python says what is wrong */
    PyErr_Clear();
  }
  if (backend == NULL) return call_slow(self, args, nargs, kwnames);

  slots s;
  signature sig;
  s.ni = s.nf = 0;
  sig.nw = sig.nobj = 0;
  sig_push(&sig, backend == str_cpu ? 1 : 2);
  for (Py_ssize_t i = 0; i < d->nparams; i++) {
    int done = arg_sig(bound[i], d->constexpr_[i], &s, &sig);
    if (done < 0) return NULL;
    if (done == 0) return call_slow(self, args, nargs, kwnames);
  }
  uint64_t hash = sig_hash(&sig);
  PyObject *entry = sig_find(&d->table, &sig, hash); /* borrowed */
  if (entry == NULL) {
    if (PyErr_Occurred()) return NULL;
    entry = resolve_miss(d, bound, backend); /* new reference */
    if (entry == NULL) return NULL;
    if (entry == Py_None) {
      Py_DECREF(entry);
      return call_slow(self, args, nargs, kwnames);
    }
    int failed = sig_insert(&d->table, &sig, hash, entry);
    Py_DECREF(entry);
    if (failed) return NULL;
  }
  Py_INCREF(entry); /* held across the launch: it keeps the kernel object loaded */

  int64_t g[3];
  if (grid_dims(d, self->grid, bound, g) < 0) {
    Py_DECREF(entry);
    return NULL;
  }
  pypto_program_fn fn = (pypto_program_fn)PyLong_AsVoidPtr(PyTuple_GET_ITEM(entry, 0));
  int32_t mode = (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
  int64_t stack = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 2));
  pypto_error err;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = d->launch(fn, s.i, s.f, g[0], g[1], g[2], nthreads, mode, stack, &err);
  Py_END_ALLOW_THREADS
  PyObject *result = Py_None;
  Py_INCREF(result);
  if (rc != 0) { /* the kernel object turns the record into its exception */
    Py_DECREF(result);
    PyObject *record = PyBytes_FromStringAndSize((const char *)&err, sizeof err);
    result = record ? PyObject_CallOneArg(PyTuple_GET_ITEM(entry, 3), record) : NULL;
    Py_XDECREF(record);
  }
  Py_DECREF(entry);
  return result;
}

/* ------------------------------------------------------------------------ the types ------ */

static int dispatcher_init(Dispatcher *self, PyObject *args, PyObject *kw) {
  PyObject *names, *flags, *defaults, *missing, *backend, *resolve, *slow, *check;
  unsigned long long launch;
  if (!PyArg_ParseTuple(args, "O!O!O!OOOOOK", &PyTuple_Type, &names, &PyTuple_Type, &flags,
                        &PyTuple_Type, &defaults, &missing, &backend, &resolve, &slow, &check,
                        &launch))
    return -1;
  Py_ssize_t n = PyTuple_GET_SIZE(names);
  if (n > MAX_PARAMS || PyTuple_GET_SIZE(flags) != n || PyTuple_GET_SIZE(defaults) != n) {
    PyErr_SetString(PyExc_ValueError, "Dispatcher: names, flags and defaults must match");
    return -1;
  }
  self->nparams = n;
  for (Py_ssize_t i = 0; i < n; i++) {
    int truth = PyObject_IsTrue(PyTuple_GET_ITEM(flags, i));
    if (truth < 0) return -1;
    self->constexpr_[i] = (char)truth;
  }
  PyObject **fields[] = {&self->names,   &self->defaults, &self->missing,
                         &self->backend, &self->resolve,
                         &self->slow,    &self->check_grid};
  PyObject *values[] = {names, defaults, missing, backend, resolve, slow, check};
  for (size_t k = 0; k < sizeof values / sizeof values[0]; k++) {
    Py_INCREF(values[k]);
    Py_XSETREF(*fields[k], values[k]);
  }
  self->launch = (launch_fn)(uintptr_t)launch;
  return 0;
}

static int dispatcher_traverse(Dispatcher *self, visitproc visit, void *arg) {
  Py_VISIT(self->names);
  Py_VISIT(self->defaults);
  Py_VISIT(self->missing);
  Py_VISIT(self->backend);
  Py_VISIT(self->resolve);
  Py_VISIT(self->slow);
  Py_VISIT(self->check_grid);
  Py_VISIT(self->last);
  return sig_traverse(&self->table, visit, arg);
}

static int dispatcher_clear(Dispatcher *self) {
  Py_CLEAR(self->names);
  Py_CLEAR(self->defaults);
  Py_CLEAR(self->missing);
  Py_CLEAR(self->backend);
  Py_CLEAR(self->resolve);
  Py_CLEAR(self->slow);
  Py_CLEAR(self->check_grid);
  Py_CLEAR(self->last);
  sig_clear(&self->table);
  return 0;
}

static void dispatcher_dealloc(Dispatcher *self) {
  PyObject_GC_UnTrack(self);
  dispatcher_clear(self);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *dispatcher_subscript(Dispatcher *self, PyObject *grid) {
  Launcher *last = (Launcher *)self->last;
  if (last != NULL && last->grid == grid) {
    Py_INCREF(last);
    return (PyObject *)last;
  }
  Launcher *l = PyObject_GC_New(Launcher, &LauncherType);
  if (l == NULL) return NULL;
  Py_INCREF(self);
  Py_INCREF(grid);
  l->d = self;
  l->grid = grid;
  l->vectorcall = launcher_call;
  PyObject_GC_Track(l);
  Py_INCREF(l);
  Py_XSETREF(self->last, (PyObject *)l);
  return (PyObject *)l;
}

static PyObject *dispatcher_forget(Dispatcher *self, PyObject *unused) {
  sig_clear(&self->table);
  Py_RETURN_NONE;
}

static PyMethodDef dispatcher_methods[] = {
    {"forget", (PyCFunction)dispatcher_forget, METH_NOARGS,
     "Drop every remembered launch (call it when the kernels dict changes)."},
    {NULL}};

static PyMappingMethods dispatcher_mapping = {.mp_subscript = (binaryfunc)dispatcher_subscript};

static PyTypeObject DispatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pypto_jit._fastlaunch.Dispatcher",
    .tp_basicsize = sizeof(Dispatcher),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)dispatcher_init,
    .tp_traverse = (traverseproc)dispatcher_traverse,
    .tp_clear = (inquiry)dispatcher_clear,
    .tp_dealloc = (destructor)dispatcher_dealloc,
    .tp_as_mapping = &dispatcher_mapping,
    .tp_methods = dispatcher_methods,
    .tp_doc = "The C launch path of one @pypto.jit kernel; dispatcher[grid](*args) launches.",
};

static int launcher_traverse(Launcher *self, visitproc visit, void *arg) {
  Py_VISIT(self->d);
  Py_VISIT(self->grid);
  return 0;
}

static int launcher_clear(Launcher *self) {
  Py_CLEAR(self->d);
  Py_CLEAR(self->grid);
  return 0;
}

static void launcher_dealloc(Launcher *self) {
  PyObject_GC_UnTrack(self);
  launcher_clear(self);
  PyObject_GC_Del(self);
}

static PyTypeObject LauncherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pypto_jit._fastlaunch.Launcher",
    .tp_basicsize = sizeof(Launcher),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Launcher, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)launcher_traverse,
    .tp_clear = (inquiry)launcher_clear,
    .tp_dealloc = (destructor)launcher_dealloc,
    .tp_doc = "kernel[grid]: call it with the kernel's arguments to launch.",
};

/* ------------------------------------------------------------------------ the module ----- */

static PyObject *set_tensor_type(PyObject *mod, PyObject *t) {
  if (!PyType_Check(t)) {
    PyErr_SetString(PyExc_TypeError, "set_tensor_type expects a type");
    return NULL;
  }
  Py_INCREF(t);
  Py_XSETREF(tensor_type, (PyTypeObject *)t);
  read_tag = 0; /* its descriptors are found at the next read */
  Py_RETURN_NONE;
}

static PyObject *abi_version(PyObject *mod, PyObject *unused) {
  return PyLong_FromLong(PYPTO_ABI_VERSION);
}

/* Loading the shim and kernels here spares a warm start the cffi module (half a millisecond
   to import, as much again to load the shim through it); the Python launch path still loads
   them through cffi when it is first used, and dlopen hands it the same objects.
   load_symbols dlopens ``path`` and finds ``n`` symbols in it: 0, or -1 with an exception
   set and the object closed again (a file that is not a pypto object stays unloaded). */
static int load_symbols(PyObject *path, const char *what, const char *const *names, int n,
                        void **out) {
  const char *p = PyUnicode_AsUTF8(path);
  if (p == NULL) return -1;
  void *h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    PyErr_Format(PyExc_OSError, "cannot load %s: %s", p, dlerror());
    return -1;
  }
  for (int k = 0; k < n; k++) {
    if ((out[k] = dlsym(h, names[k])) == NULL) {
      PyErr_Format(PyExc_RuntimeError, "%U is not a pypto %s object: no symbol %s", path, what,
                   names[k]);
      dlclose(h);
      return -1;
    }
  }
  return 0;
}

/* runtime_info(path) -> (address of pypto_launch, the shim's ABI version) */
static PyObject *runtime_info(PyObject *mod, PyObject *path) {
  static const char *const names[] = {"pypto_launch", "pypto_abi_version"};
  void *f[2];
  if (load_symbols(path, "runtime", names, 2, f)) return NULL;
  return Py_BuildValue("(Ki)", (unsigned long long)(uintptr_t)f[0],
                       (int)((int32_t(*)(void))f[1])());
}

/* kernel_info(path) -> (address of pypto_program, its stack bytes, the kernel's ABI version) */
static PyObject *kernel_info(PyObject *mod, PyObject *path) {
  static const char *const names[] = {"pypto_program", "pypto_stack_bytes", "pypto_kernel_abi"};
  void *f[3];
  if (load_symbols(path, "kernel", names, 3, f)) return NULL;
  return Py_BuildValue("(KLi)", (unsigned long long)(uintptr_t)f[0],
                       (long long)((int64_t(*)(void))f[1])(), (int)((int32_t(*)(void))f[2])());
}

static PyMethodDef module_methods[] = {
    {"set_tensor_type", set_tensor_type, METH_O, "Tell the fast path what torch.Tensor is."},
    {"abi_version", abi_version, METH_NOARGS, "The runtime ABI this extension was built for."},
    {"runtime_info", runtime_info, METH_O, "Load the shim: (pypto_launch address, ABI)."},
    {"kernel_info", kernel_info, METH_O, "Load a kernel: (program address, stack bytes, ABI)."},
    {NULL}};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_fastlaunch", NULL, -1,
                                        module_methods};

static int intern_all(void) {
  if ((str_entry = PyUnicode_InternFromString("_fast_entry")) == NULL) return -1;
  if ((str_cpu = PyUnicode_InternFromString("cpu")) == NULL) return -1;
  if ((str_sim = PyUnicode_InternFromString("sim")) == NULL) return -1;
  return arguments_init();
}

PyMODINIT_FUNC PyInit__fastlaunch(void) {
  if (PyType_Ready(&DispatcherType) < 0 || PyType_Ready(&LauncherType) < 0) return NULL;
  if (intern_all() < 0) return NULL;
  PyObject *m = PyModule_Create(&module_def);
  if (m == NULL) return NULL;
  Py_INCREF(&DispatcherType);
  if (PyModule_AddObject(m, "Dispatcher", (PyObject *)&DispatcherType) < 0) {
    Py_DECREF(&DispatcherType);
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
