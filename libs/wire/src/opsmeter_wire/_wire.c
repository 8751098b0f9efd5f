/* The ingest hot path's encoders: an event's id (UUIDv5) and its JSON, written straight from the
 * validated fields into one buffer, with no Python objects built in between.
 *
 * What the JSON holds and in which order is declared in Python (the gateway's domain module): an
 * Encoder is made per request from bytes parts and a field layout, and encodes each event with one
 * call. The unit tests decode every output against the same fields encoded by orjson. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ SHA-1 (FIPS 180-4) */

typedef struct {
    uint32_t h[5];
    uint64_t length; /* bytes hashed so far */
    uint8_t block[64];
    size_t used; /* bytes in block */
} Sha1;

#define ROL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))

static void sha1_init(Sha1 *s) {
    s->h[0] = 0x67452301u;
    s->h[1] = 0xEFCDAB89u;
    s->h[2] = 0x98BADCFEu;
    s->h[3] = 0x10325476u;
    s->h[4] = 0xC3D2E1F0u;
    s->length = 0;
    s->used = 0;
}

static void sha1_compress(uint32_t h[5], const uint8_t *p) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t t = ROL(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = ROL(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1_update(Sha1 *s, const uint8_t *p, size_t n) {
    s->length += n;
    while (n > 0) {
        size_t take = 64 - s->used;
        if (take > n) take = n;
        memcpy(s->block + s->used, p, take);
        s->used += take;
        p += take;
        n -= take;
        if (s->used == 64) {
            sha1_compress(s->h, s->block);
            s->used = 0;
        }
    }
}

static void sha1_final(Sha1 *s, uint8_t out[20]) {
    uint64_t bits = s->length * 8;
    s->block[s->used++] = 0x80;
    if (s->used > 56) {
        memset(s->block + s->used, 0, 64 - s->used);
        sha1_compress(s->h, s->block);
        s->used = 0;
    }
    memset(s->block + s->used, 0, 56 - s->used);
    for (int i = 0; i < 8; i++) s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_compress(s->h, s->block);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

/* ------------------------------------------------------------------ output buffer */

typedef struct {
    char *p;
    Py_ssize_t len, cap;
    char local[4096];
} Buf;

static void buf_init(Buf *b) {
    b->p = b->local;
    b->len = 0;
    b->cap = (Py_ssize_t)sizeof b->local;
}

static void buf_free(Buf *b) {
    if (b->p != b->local) PyMem_Free(b->p);
}

static int buf_reserve(Buf *b, Py_ssize_t more) {
    if (more <= b->cap - b->len) return 0;
    if (more > PY_SSIZE_T_MAX / 2 - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cap = b->cap;
    while (cap < b->len + more) cap *= 2;
    char *p = PyMem_Malloc((size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(p, b->p, (size_t)b->len);
    buf_free(b);
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static inline int buf_bytes(Buf *b, PyObject *bytes) {
    return buf_put(b, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
}

static const char HEX[] = "0123456789abcdef";

/* A JSON string of UTF-8 text: quotes, backslashes and control characters escaped. */
static int put_json_utf8(Buf *b, const char *u, Py_ssize_t n) {
    if (n > (PY_SSIZE_T_MAX / 2 - 2) / 6) {
        PyErr_NoMemory();
        return -1;
    }
    if (buf_reserve(b, n * 6 + 2) < 0) return -1; /* at most six bytes per byte (\u00XX), and the quotes */
    char *out = b->p + b->len;
    *out++ = '"';
    Py_ssize_t run = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        memcpy(out, u + run, (size_t)(i - run));
        out += i - run;
        run = i + 1;
        *out++ = '\\';
        switch (c) {
            case '"': *out++ = '"'; break;
            case '\\': *out++ = '\\'; break;
            case '\n': *out++ = 'n'; break;
            case '\r': *out++ = 'r'; break;
            case '\t': *out++ = 't'; break;
            case '\b': *out++ = 'b'; break;
            case '\f': *out++ = 'f'; break;
            default:
                *out++ = 'u';
                *out++ = '0';
                *out++ = '0';
                *out++ = HEX[c >> 4];
                *out++ = HEX[c & 15];
        }
    }
    memcpy(out, u + run, (size_t)(n - run));
    out += n - run;
    *out++ = '"';
    b->len = out - b->p;
    return 0;
}

/* The inside of a JSON string (escaped, without its quotes): the parts around it hold the quotes. */
static int put_json_utf8_raw(Buf *b, const char *u, Py_ssize_t n) {
    Py_ssize_t start = b->len;
    if (put_json_utf8(b, u, n) < 0) return -1;
    memmove(b->p + start, b->p + start + 1, (size_t)(b->len - start - 2));
    b->len -= 2;
    return 0;
}

static int put_json_str(Buf *b, PyObject *s) {
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "expected str, got %.80s", Py_TYPE(s)->tp_name);
        return -1;
    }
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) return -1;
    return put_json_utf8(b, u, n);
}

/* The decimal text of x, written at the end of digits; returns where it starts. */
static inline int ll_digits(long long x, char digits[24]) {
    int i = 24;
    unsigned long long m = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        digits[--i] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (x < 0) digits[--i] = '-';
    return i;
}

static int put_int(Buf *b, PyObject *v) {
    if (!PyLong_Check(v) || PyBool_Check(v)) {
        PyErr_Format(PyExc_TypeError, "expected int, got %.80s", Py_TYPE(v)->tp_name);
        return -1;
    }
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (overflow) { /* int's own text (not a subclass's __str__: no Python code runs while writing) */
        PyObject *text = PyLong_Type.tp_repr(v);
        if (text == NULL) return -1;
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(text, &n);
        int rc = u == NULL ? -1 : buf_put(b, u, n);
        Py_DECREF(text);
        return rc;
    }
    char digits[24];
    int i = ll_digits(x, digits);
    return buf_put(b, digits + i, 24 - i);
}

/* A metadata value: null, true/false, an int, a finite float, or a string. */
static int put_scalar(Buf *b, PyObject *v) {
    if (v == Py_None) return buf_put(b, "null", 4);
    if (v == Py_True) return buf_put(b, "true", 4);
    if (v == Py_False) return buf_put(b, "false", 5);
    if (PyLong_Check(v)) return put_int(b, v);
    if (PyUnicode_Check(v)) return put_json_str(b, v);
    if (PyFloat_Check(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d)) {
            PyErr_SetString(PyExc_ValueError, "a float that is not finite has no JSON form");
            return -1;
        }
        char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL) return -1;
        int rc = buf_put(b, text, (Py_ssize_t)strlen(text));
        PyMem_Free(text);
        return rc;
    }
    PyErr_Format(PyExc_TypeError, "metadata values are scalars, got %.80s", Py_TYPE(v)->tp_name);
    return -1;
}

static int put_object(Buf *b, PyObject *d) {
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "expected dict, got %.80s", Py_TYPE(d)->tp_name);
        return -1;
    }
    if (buf_put(b, "{", 1) < 0) return -1;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int first = 1;
    while (PyDict_Next(d, &pos, &key, &value)) {
        if (!first && buf_put(b, ",", 1) < 0) return -1;
        first = 0;
        if (put_json_str(b, key) < 0 || buf_put(b, ":", 1) < 0 || put_scalar(b, value) < 0) return -1;
    }
    return buf_put(b, "}", 1);
}

/* ------------------------------------------------------------------ the encoder */

enum Kind { K_STR, K_LOWER, K_OR_UNKNOWN, K_OR_NULL, K_INT_OR_NULL, K_INT_OR_ZERO, K_OBJECT, K_SUM };

typedef struct {
    PyObject *prefix; /* bytes */
    PyObject *key;    /* str */
    PyObject *key2;   /* str, for K_SUM: the value is key2's + key3's */
    PyObject *key3;
    int kind;
} Field;

typedef struct {
    PyObject_HEAD
    Sha1 id_prefix;
    PyObject *parts[5]; /* before the id, before occurred_at, before ingested_at, before the fields, before the cost */
    Field *fields;
    Py_ssize_t nfields;
} Encoder;

static void Encoder_dealloc(Encoder *self) {
    for (int i = 0; i < 5; i++) Py_XDECREF(self->parts[i]);
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        Py_XDECREF(self->fields[i].prefix);
        Py_XDECREF(self->fields[i].key);
        Py_XDECREF(self->fields[i].key2);
        Py_XDECREF(self->fields[i].key3);
    }
    PyMem_Free(self->fields);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int kind_of(PyObject *name) {
    const char *k = PyUnicode_AsUTF8(name);
    if (k == NULL) return -1;
    static const char *names[] = {"str", "lower", "or_unknown", "or_null", "int_or_null", "int_or_zero", "object", "sum"};
    for (int i = 0; i < 8; i++)
        if (strcmp(k, names[i]) == 0) return i;
    PyErr_Format(PyExc_ValueError, "unknown field kind %R", name);
    return -1;
}

static PyObject *Encoder_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"id_prefix", "parts", "fields", NULL};
    Py_buffer prefix;
    PyObject *parts, *fields;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*O!O!", kwlist, &prefix, &PyTuple_Type, &parts, &PyTuple_Type,
                                     &fields))
        return NULL;
    Encoder *self = (Encoder *)type->tp_alloc(type, 0);
    if (self == NULL) {
        PyBuffer_Release(&prefix);
        return NULL;
    }
    sha1_init(&self->id_prefix);
    sha1_update(&self->id_prefix, prefix.buf, (size_t)prefix.len);
    PyBuffer_Release(&prefix);
    if (PyTuple_GET_SIZE(parts) != 5) {
        PyErr_SetString(PyExc_ValueError, "parts: five bytes");
        goto fail;
    }
    for (int i = 0; i < 5; i++) {
        PyObject *part = PyTuple_GET_ITEM(parts, i);
        if (!PyBytes_Check(part)) {
            PyErr_SetString(PyExc_TypeError, "parts: five bytes");
            goto fail;
        }
        Py_INCREF(part);
        self->parts[i] = part;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    self->fields = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Field));
    if (self->fields == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    self->nfields = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *spec = PyTuple_GET_ITEM(fields, i);
        PyObject *fprefix, *key, *kind, *key2 = Py_None, *key3 = Py_None;
        if (!PyTuple_Check(spec) || !PyArg_ParseTuple(spec, "SUU|UU", &fprefix, &key, &kind, &key2, &key3)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "fields: (prefix, key, kind[, key2, key3]) tuples");
            goto fail;
        }
        int k = kind_of(kind);
        if (k < 0) goto fail;
        if ((k == K_SUM) != (key3 != Py_None)) {
            PyErr_SetString(PyExc_TypeError, "a sum, and only a sum, names the two keys it adds");
            goto fail;
        }
        Field *f = &self->fields[i];
        Py_INCREF(fprefix);
        f->prefix = fprefix;
        Py_INCREF(key);
        f->key = key;
        if (k == K_SUM) {
            Py_INCREF(key2);
            f->key2 = key2;
            Py_INCREF(key3);
            f->key3 = key3;
        }
        f->kind = k;
    }
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static int put_event_id(Encoder *self, PyObject *ext, char text[36]) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(ext, &n);
    if (u == NULL) return -1;
    Sha1 s = self->id_prefix;
    sha1_update(&s, (const uint8_t *)u, (size_t)n);
    uint8_t digest[20];
    sha1_final(&s, digest);
    digest[6] = (uint8_t)((digest[6] & 0x0f) | 0x50);
    digest[8] = (uint8_t)((digest[8] & 0x3f) | 0x80);
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) text[o++] = '-';
        text[o++] = HEX[digest[i] >> 4];
        text[o++] = HEX[digest[i] & 15];
    }
    return 0;
}

static PyObject *get(PyObject *values, PyObject *key) {
    PyObject *v = PyDict_GetItemWithError(values, key);
    if (v == NULL && !PyErr_Occurred()) PyErr_Format(PyExc_KeyError, "%R", key);
    return v;
}

static int put_field(Buf *b, Field *f, PyObject *values, PyObject *v) {
    if (buf_bytes(b, f->prefix) < 0) return -1;
    switch (f->kind) {
        case K_STR:
            return put_json_str(b, v);
        case K_LOWER: {
            if (PyUnicode_Check(v) && PyUnicode_IS_ASCII(v)) {
                Py_ssize_t n = PyUnicode_GET_LENGTH(v);
                const char *u = (const char *)PyUnicode_DATA(v);
                char small[256];
                char *low = n <= 256 ? small : PyMem_Malloc((size_t)n);
                if (low == NULL) return PyErr_NoMemory(), -1;
                for (Py_ssize_t i = 0; i < n; i++) low[i] = (char)(u[i] >= 'A' && u[i] <= 'Z' ? u[i] + 32 : u[i]);
                int rc = put_json_utf8(b, low, n);
                if (low != small) PyMem_Free(low);
                return rc;
            }
            if (!PyUnicode_Check(v)) return put_json_str(b, v); /* raises the TypeError */
            PyObject *lowered = PyObject_CallMethod((PyObject *)&PyUnicode_Type, "lower", "O", v); /* str.lower */
            if (lowered == NULL) return -1;
            int rc = put_json_str(b, lowered);
            Py_DECREF(lowered);
            return rc;
        }
        case K_OR_UNKNOWN:
            if (v == Py_None || (PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) == 0))
                return buf_put(b, "\"unknown\"", 9);
            return put_json_str(b, v);
        case K_OR_NULL:
            if (v == Py_None || (PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) == 0)) return buf_put(b, "null", 4);
            return put_json_str(b, v);
        case K_INT_OR_NULL:
            return v == Py_None ? buf_put(b, "null", 4) : put_int(b, v);
        case K_INT_OR_ZERO:
            return v == Py_None ? buf_put(b, "0", 1) : put_int(b, v);
        case K_OBJECT:
            return v == Py_None ? buf_put(b, "{}", 2) : put_object(b, v);
        case K_SUM: {
            PyObject *x = get(values, f->key2), *y = x == NULL ? NULL : get(values, f->key3);
            if (y == NULL) return -1;
            if (!PyLong_CheckExact(x) || !PyLong_CheckExact(y)) {
                PyErr_SetString(PyExc_TypeError, "a sum adds two ints");
                return -1;
            }
            PyObject *sum = PyNumber_Add(x, y);
            if (sum == NULL) return -1;
            int rc = put_int(b, sum);
            Py_DECREF(sum);
            return rc;
        }
    }
    return 0;
}

/* encode(values, external_request_id, occurred_at, ingested_at, cost, tail) -> (event_id, value) */
static PyObject *Encoder_encode(Encoder *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char usage[] =
        "encode(values: dict, external_request_id: str, occurred_at: str, ingested_at: str, cost: int, tail: bytes)";
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    PyObject *values = args[0], *ext = args[1], *occurred = args[2], *ingested = args[3], *cost = args[4],
             *tail = args[5];
    if (!PyDict_Check(values) || !PyUnicode_Check(ext) || !PyUnicode_Check(occurred) || !PyUnicode_Check(ingested) ||
        !PyBytes_Check(tail)) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    char id[36];
    if (put_event_id(self, ext, id) < 0) return NULL;
    Buf b;
    buf_init(&b);
    Py_ssize_t olen, ilen;
    const char *occ = PyUnicode_AsUTF8AndSize(occurred, &olen);
    const char *ing = occ == NULL ? NULL : PyUnicode_AsUTF8AndSize(ingested, &ilen);
    if (ing == NULL || buf_bytes(&b, self->parts[0]) < 0 || buf_put(&b, id, 36) < 0 ||
        buf_bytes(&b, self->parts[1]) < 0 || put_json_utf8_raw(&b, occ, olen) < 0 || buf_bytes(&b, self->parts[2]) < 0 ||
        put_json_utf8_raw(&b, ing, ilen) < 0 || buf_bytes(&b, self->parts[3]) < 0)
        goto fail;
    /* The values usually come in the fields' order (a model's __dict__): walk them, and look a key up
       only where the order differs. */
    Py_ssize_t pos = 0;
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        Field *f = &self->fields[i];
        PyObject *key, *v = NULL;
        Py_ssize_t at = pos;
        if (PyDict_Next(values, &at, &key, &v) && key == f->key)
            pos = at;
        else if ((v = get(values, f->key)) == NULL)
            goto fail;
        if (put_field(&b, f, values, v) < 0) goto fail;
    }
    if (buf_bytes(&b, self->parts[4]) < 0 || put_int(&b, cost) < 0 || buf_bytes(&b, tail) < 0) goto fail;
    PyObject *value = PyBytes_FromStringAndSize(b.p, b.len);
    buf_free(&b);
    if (value == NULL) return NULL;
    PyObject *event_id = PyUnicode_FromStringAndSize(id, 36);
    if (event_id == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, event_id, value);
    Py_DECREF(event_id);
    Py_DECREF(value);
    return result;
fail:
    buf_free(&b);
    return NULL;
}

static PyObject *Encoder_event_id(Encoder *self, PyObject *ext) {
    if (!PyUnicode_Check(ext)) {
        PyErr_SetString(PyExc_TypeError, "event_id(external_request_id: str)");
        return NULL;
    }
    char id[36];
    if (put_event_id(self, ext, id) < 0) return NULL;
    return PyUnicode_FromStringAndSize(id, 36);
}

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))Encoder_encode, METH_FASTCALL, "encode one event"},
    {"event_id", (PyCFunction)Encoder_event_id, METH_O, "the event id of an external request id"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "opsmeter_wire._wire.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Encoder_new,
    .tp_methods = Encoder_methods,
};

/* ------------------------------------------------------------------ accepted answers */

/* Exact decimal USD of micro-USD: 1234 -> 0.001234, 2500000 -> 2.5, 0 -> 0. */
static int put_micro_usd(Buf *b, PyObject *cost) {
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(cost, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (overflow || x == LLONG_MIN) {
        PyErr_SetString(PyExc_OverflowError, "cost out of range");
        return -1;
    }
    char text[32]; /* written from the end: the fraction's six digits (trailing zeros dropped), then the whole */
    int i = 32, end = 32;
    unsigned long long m = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    unsigned long long whole = m / 1000000, fraction = m % 1000000;
    if (fraction) {
        while (fraction % 10 == 0) {
            fraction /= 10;
            end--;
        }
        i = end;
        for (int d = 32 - end; d < 6; d++) {
            text[--i] = (char)('0' + fraction % 10);
            fraction /= 10;
        }
        text[--i] = '.';
    }
    do {
        text[--i] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    if (x < 0) text[--i] = '-';
    return buf_put(b, text + i, end - i);
}

typedef struct {
    PyObject_HEAD
    PyObject *parts[5];
} Answers;

static void Answers_dealloc(Answers *self) {
    for (int i = 0; i < 5; i++) Py_XDECREF(self->parts[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Answers_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"parts", NULL};
    PyObject *parts;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!", kwlist, &PyTuple_Type, &parts)) return NULL;
    if (PyTuple_GET_SIZE(parts) != 5) {
        PyErr_SetString(PyExc_ValueError, "parts: five bytes");
        return NULL;
    }
    Answers *self = (Answers *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    for (int i = 0; i < 5; i++) {
        PyObject *part = PyTuple_GET_ITEM(parts, i);
        if (!PyBytes_Check(part) || PyBytes_GET_SIZE(part) < 1) {
            PyErr_SetString(PyExc_TypeError, "parts: five non-empty bytes");
            Py_DECREF(self);
            return NULL;
        }
        Py_INCREF(part);
        self->parts[i] = part;
    }
    return (PyObject *)self;
}

/* render(open, event_id, cost, quoted, flag) -> (answer, opened)
 *   answer = parts[0] event_id parts[1] usd(cost) parts[2] cost parts[3] quoted parts[4]-with-flag
 * where parts[4] ends the answer after the flag (true/false) is written before its last byte;
 *   opened = open + answer without its first and last byte. */
static PyObject *Answers_render(Answers *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyBytes_Check(args[0]) || !PyUnicode_Check(args[1]) || !PyLong_Check(args[2]) ||
        !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "render(open: bytes, event_id: str, cost: int, quoted: bytes, flag: bool)");
        return NULL;
    }
    int flag = PyObject_IsTrue(args[4]);
    if (flag < 0) return NULL;
    Py_ssize_t idlen;
    const char *id = PyUnicode_AsUTF8AndSize(args[1], &idlen);
    if (id == NULL) return NULL;
    Buf b;
    buf_init(&b);
    PyObject *last = self->parts[4];
    Py_ssize_t last_len = PyBytes_GET_SIZE(last);
    if (buf_bytes(&b, self->parts[0]) < 0 || put_json_utf8(&b, id, idlen) < 0 || buf_bytes(&b, self->parts[1]) < 0 ||
        put_micro_usd(&b, args[2]) < 0 || buf_bytes(&b, self->parts[2]) < 0 || put_int(&b, args[2]) < 0 ||
        buf_bytes(&b, self->parts[3]) < 0 || buf_bytes(&b, args[3]) < 0 ||
        buf_put(&b, PyBytes_AS_STRING(last), last_len - 1) < 0 || buf_put(&b, flag ? "true" : "false", flag ? 4 : 5) < 0 ||
        buf_put(&b, PyBytes_AS_STRING(last) + last_len - 1, 1) < 0) {
        buf_free(&b);
        return NULL;
    }
    PyObject *answer = PyBytes_FromStringAndSize(b.p, b.len);
    Py_ssize_t open_len = PyBytes_GET_SIZE(args[0]);
    PyObject *opened = answer == NULL ? NULL : PyBytes_FromStringAndSize(NULL, open_len + b.len - 2);
    if (opened != NULL) {
        memcpy(PyBytes_AS_STRING(opened), PyBytes_AS_STRING(args[0]), (size_t)open_len);
        memcpy(PyBytes_AS_STRING(opened) + open_len, b.p + 1, (size_t)(b.len - 2));
    }
    buf_free(&b);
    if (opened == NULL) {
        Py_XDECREF(answer);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, answer, opened);
    Py_DECREF(answer);
    Py_DECREF(opened);
    return result;
}

static PyMethodDef Answers_methods[] = {
    {"render", (PyCFunction)(void (*)(void))Answers_render, METH_FASTCALL, "one accepted answer, stored and opened"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AnswersType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "opsmeter_wire._wire.Answers",
    .tp_basicsize = sizeof(Answers),
    .tp_dealloc = (destructor)Answers_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Answers_new,
    .tp_methods = Answers_methods,
};

/* ------------------------------------------------------------------ records as pydantic models */

/* A Records object turns parsed JSON objects (dicts from orjson) into instances of one pydantic model,
 * for the fields whose rules it knows: text (a length range, no control character or lone surrogate,
 * an ASCII non-space character at each end), ints in a range (not bools), one of a few strings, and
 * fields that must be absent (those with a Python validator). It only ever declines: a record it does
 * not accept as it is goes to pydantic, which names what is wrong. An instance is built as pydantic-core
 * builds one: the class's tp_new, then __dict__ (every field, in order), __pydantic_fields_set__ (the
 * fields given), __pydantic_extra__ and __pydantic_private__ (None) set by the generic setattr. */

enum { F_TEXT, F_INT, F_CHOICE, F_ABSENT };

#define KEYMAP_SIZE 256 /* a power of two; at most half of it filled */

typedef struct {
    PyObject *alias, *name, *dflt, *choices; /* choices: a tuple of str (F_CHOICE) */
    int kind, nullable, required;
    long long lo, hi;
} FieldRule;

typedef struct {
    PyObject_HEAD
    PyTypeObject *model;
    FieldRule *rules;
    Py_ssize_t n;
    PyObject *empty, *s_dict, *s_set, *s_extra, *s_private;
    PyObject *template; /* every field name -> its default (None for a required one), in order: copied per record */
    PyObject *given_sets; /* mask of the fields given -> frozenset of their names, copied per record */
    PyObject *aliases;    /* alias -> field index */
    unsigned long long required;
    /* The key objects seen (a parser reuses the same str for the same key), by address -> field index:
     * each is held, so an address is never reused while it is here. */
    PyObject *seen_key[KEYMAP_SIZE];
    int seen_index[KEYMAP_SIZE];
    int seen_count;
} Records;

static void Records_dealloc(Records *self) {
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Py_XDECREF(self->rules[i].alias);
        Py_XDECREF(self->rules[i].name);
        Py_XDECREF(self->rules[i].dflt);
        Py_XDECREF(self->rules[i].choices);
    }
    PyMem_Free(self->rules);
    Py_XDECREF(self->model);
    Py_XDECREF(self->empty);
    Py_XDECREF(self->s_dict);
    Py_XDECREF(self->s_set);
    Py_XDECREF(self->s_extra);
    Py_XDECREF(self->s_private);
    Py_XDECREF(self->template);
    Py_XDECREF(self->given_sets);
    Py_XDECREF(self->aliases);
    for (int i = 0; i < KEYMAP_SIZE; i++) Py_XDECREF(self->seen_key[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Records(model, fields): fields are (alias, name, kind, nullable, required, default, lo, hi, choices). */
static PyObject *Records_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"model", "fields", NULL};
    PyObject *model, *fields;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!", kwlist, &PyType_Type, &model, &PyTuple_Type, &fields))
        return NULL;
    if (((PyTypeObject *)model)->tp_new == NULL) {
        PyErr_SetString(PyExc_TypeError, "model: a class that can be instantiated");
        return NULL;
    }
    Records *self = (Records *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    Py_INCREF(model);
    self->model = (PyTypeObject *)model;
    self->n = 0;
    self->rules = PyMem_Calloc((size_t)PyTuple_GET_SIZE(fields) + 1, sizeof(FieldRule));
    self->empty = PyTuple_New(0);
    self->s_dict = PyUnicode_InternFromString("__dict__");
    self->s_set = PyUnicode_InternFromString("__pydantic_fields_set__");
    self->s_extra = PyUnicode_InternFromString("__pydantic_extra__");
    self->s_private = PyUnicode_InternFromString("__pydantic_private__");
    self->template = PyDict_New();
    self->given_sets = PyDict_New();
    self->aliases = PyDict_New();
    self->required = 0;
    self->seen_count = 0;
    memset(self->seen_key, 0, sizeof self->seen_key);
    if (PyTuple_GET_SIZE(fields) > 64) {
        PyErr_SetString(PyExc_ValueError, "fields: at most 64");
        Py_DECREF(self);
        return NULL;
    }
    if (self->rules == NULL || self->empty == NULL || self->s_dict == NULL || self->s_set == NULL ||
        self->s_extra == NULL || self->s_private == NULL || self->template == NULL || self->given_sets == NULL ||
        self->aliases == NULL) {
        Py_DECREF(self);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    static const char *kinds[] = {"text", "int", "choice", "absent"};
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
        PyObject *f = PyTuple_GET_ITEM(fields, i);
        FieldRule *r = &self->rules[i];
        const char *kind;
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 9 ||
            !PyArg_ParseTuple(f, "UUsppOLLO!", &r->alias, &r->name, &kind, &r->nullable, &r->required, &r->dflt,
                              &r->lo, &r->hi, &PyTuple_Type, &r->choices)) {
            r->alias = r->name = r->dflt = r->choices = NULL;
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_SetString(PyExc_TypeError,
                                "fields: (alias: str, name: str, kind: str, nullable: bool, required: bool, "
                                "default, lo: int, hi: int, choices: tuple[str, ...]) each");
            }
            Py_DECREF(self);
            return NULL;
        }
        Py_INCREF(r->alias);
        Py_INCREF(r->name);
        Py_INCREF(r->dflt);
        Py_INCREF(r->choices);
        self->n = i + 1;
        r->kind = -1;
        for (int k = 0; k < 4; k++)
            if (strcmp(kind, kinds[k]) == 0) r->kind = k;
        int choices_ok = 1;
        for (Py_ssize_t c = 0; c < PyTuple_GET_SIZE(r->choices); c++)
            if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(r->choices, c))) choices_ok = 0;
        if (r->kind < 0 || !choices_ok || !PyUnicode_CheckExact(r->alias) || !PyUnicode_CheckExact(r->name)) {
            PyErr_Format(PyExc_ValueError, "fields: %U: kind is text, int, choice or absent; choices are str",
                         r->alias);
            Py_DECREF(self);
            return NULL;
        }
        PyObject *index = PyLong_FromSsize_t(i);
        if (index == NULL || PyDict_Contains(self->template, r->name) != 0 || PyDict_Contains(self->aliases, r->alias) != 0 ||
            PyDict_SetItem(self->template, r->name, r->required ? Py_None : r->dflt) < 0 ||
            PyDict_SetItem(self->aliases, r->alias, index) < 0) {
            Py_XDECREF(index);
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "fields: %U named twice", r->name);
            Py_DECREF(self);
            return NULL;
        }
        Py_DECREF(index);
        if (r->required) self->required |= 1ULL << i;
    }
    return (PyObject *)self;
}

static int clean_text(PyObject *v, long long lo, long long hi) {
    if (!PyUnicode_CheckExact(v)) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    if (n < lo || n > hi) return 0;
    if (n == 0) return 1;
    int kind = PyUnicode_KIND(v);
    const void *data = PyUnicode_DATA(v);
    Py_UCS4 first = PyUnicode_READ(kind, data, 0), last = PyUnicode_READ(kind, data, n - 1);
    if (first <= ' ' || first >= 0x7f || last <= ' ' || last >= 0x7f) return 0; /* ends: printable ASCII */
    if (PyUnicode_IS_ASCII(v)) {
        const unsigned char *c = data;
        for (Py_ssize_t i = 0; i < n; i++)
            if (c[i] < 0x20 || c[i] == 0x7f) return 0;
        return 1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 0x20 || c == 0x7f || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    }
    return 1;
}

/* 1: the value meets the rule; 0: it does not; -1: an error. */
static int rule_holds(const FieldRule *r, PyObject *v) {
    if (v == Py_None) return r->nullable && r->kind != F_ABSENT;
    switch (r->kind) {
        case F_TEXT:
            return clean_text(v, r->lo, r->hi);
        case F_INT: {
            if (!PyLong_CheckExact(v)) return 0;
            int overflow;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (x == -1 && PyErr_Occurred()) return -1;
            return !overflow && x >= r->lo && x <= r->hi;
        }
        case F_CHOICE:
            if (!PyUnicode_CheckExact(v)) return 0;
            for (Py_ssize_t c = 0; c < PyTuple_GET_SIZE(r->choices); c++) {
                int eq = PyUnicode_Compare(v, PyTuple_GET_ITEM(r->choices, c));
                if (eq == -1 && PyErr_Occurred()) return -1;
                if (eq == 0) return 1;
            }
            return 0;
        default:
            return 0;
    }
}

/* The names of the fields given (bit i: field i) as a new set, copied from the frozenset kept per mask
 * (at most 4,096 masks kept; the records of one client mostly give the same fields). */
static PyObject *given_set(Records *self, unsigned long long mask) {
    PyObject *key = PyLong_FromUnsignedLongLong(mask);
    if (key == NULL) return NULL;
    PyObject *names = PyDict_GetItemWithError(self->given_sets, key); /* borrowed */
    if (names != NULL || PyErr_Occurred()) {
        Py_DECREF(key);
        return names == NULL ? NULL : PySet_New(names);
    }
    PyObject *set = PySet_New(NULL);
    for (Py_ssize_t i = 0; set != NULL && i < self->n; i++)
        if ((mask >> i & 1) && PySet_Add(set, self->rules[i].name) < 0) Py_CLEAR(set);
    if (set != NULL && PyDict_GET_SIZE(self->given_sets) < 4096) {
        PyObject *frozen = PyFrozenSet_New(set);
        if (frozen == NULL || PyDict_SetItem(self->given_sets, key, frozen) < 0) Py_CLEAR(set);
        Py_XDECREF(frozen);
    }
    Py_DECREF(key);
    return set;
}

/* The field index of a key: -1 when it is no field's, -2 on an error. Found by the key object's address
 * when seen before, else by its text (and then remembered, while the table is at most half full). */
static int key_index(Records *self, PyObject *key) {
    size_t slot = ((uintptr_t)key >> 4) & (KEYMAP_SIZE - 1);
    while (self->seen_key[slot] != NULL) {
        if (self->seen_key[slot] == key) return self->seen_index[slot];
        slot = (slot + 1) & (KEYMAP_SIZE - 1);
    }
    PyObject *index = PyDict_GetItemWithError(self->aliases, key); /* exact str keys: no Python code */
    if (index == NULL) return PyErr_Occurred() ? -2 : -1;
    int i = (int)PyLong_AsLong(index);
    if (self->seen_count < KEYMAP_SIZE / 2) {
        Py_INCREF(key);
        self->seen_key[slot] = key;
        self->seen_index[slot] = i;
        self->seen_count++;
    }
    return i;
}

/* The model of one record, Py_None when it declines, NULL on an error. */
static PyObject *Records_one(Records *self, PyObject *doc) {
    if (!PyDict_CheckExact(doc)) Py_RETURN_NONE;
    unsigned long long mask = 0;
    PyObject *found[64];
    Py_ssize_t pos = 0;
    PyObject *key, *v; /* borrowed: no Python code runs while the items are walked */
    while (PyDict_Next(doc, &pos, &key, &v)) {
        if (!PyUnicode_CheckExact(key)) Py_RETURN_NONE;
        int i = key_index(self, key);
        if (i == -2) return NULL;
        if (i < 0) Py_RETURN_NONE; /* a key that is no field's */
        int holds = rule_holds(&self->rules[i], v);
        if (holds < 0) return NULL;
        if (!holds) Py_RETURN_NONE;
        found[i] = v;
        mask |= 1ULL << i;
    }
    if ((mask & self->required) != self->required) Py_RETURN_NONE;
    PyObject *values = PyDict_Copy(self->template), *given = NULL, *obj = NULL;
    if (values == NULL) return NULL;
    for (Py_ssize_t i = 0; i < self->n; i++)
        if ((mask >> i & 1) && PyDict_SetItem(values, self->rules[i].name, found[i]) < 0) goto fail;
    given = given_set(self, mask);
    if (given == NULL) goto fail;
    obj = self->model->tp_new(self->model, self->empty, NULL);
    if (obj == NULL || PyObject_GenericSetAttr(obj, self->s_dict, values) < 0 ||
        PyObject_GenericSetAttr(obj, self->s_set, given) < 0 || PyObject_GenericSetAttr(obj, self->s_extra, Py_None) < 0 ||
        PyObject_GenericSetAttr(obj, self->s_private, Py_None) < 0)
        goto fail;
    Py_DECREF(values);
    Py_DECREF(given);
    return obj;
fail:
    Py_XDECREF(values);
    Py_XDECREF(given);
    Py_XDECREF(obj);
    return NULL;
}

/* build(documents: list) -> list of models, or None when any record is declined. */
static PyObject *Records_build(Records *self, PyObject *documents) {
    if (!PyList_CheckExact(documents)) {
        PyErr_SetString(PyExc_TypeError, "build(documents: list)");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(documents);
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *model = Records_one(self, PyList_GET_ITEM(documents, i));
        if (model == NULL || model == Py_None) {
            Py_DECREF(out);
            return model; /* NULL (an error) or None (declined) */
        }
        PyList_SET_ITEM(out, i, model);
    }
    return out;
}

static PyMethodDef Records_methods[] = {
    {"build", (PyCFunction)Records_build, METH_O, "the models of parsed records, or None if one is declined"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RecordsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "opsmeter_wire._wire.Records",
    .tp_basicsize = sizeof(Records),
    .tp_dealloc = (destructor)Records_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Records_new,
    .tp_methods = Records_methods,
};

/* ------------------------------------------------------------------ Redis commands (RESP) */

/* One argument of a command as bytes: bytes as they are, str as UTF-8, int as its decimal text
 * (within the 64 bits Redis's own numbers have). Returns the length, -1 with an exception set. */
static Py_ssize_t resp_arg(PyObject *v, const char **data, char digits[24]) {
    if (PyBytes_Check(v)) {
        *data = PyBytes_AS_STRING(v);
        return PyBytes_GET_SIZE(v);
    }
    if (PyUnicode_Check(v)) {
        Py_ssize_t n;
        *data = PyUnicode_AsUTF8AndSize(v, &n);
        return *data == NULL ? -1 : n;
    }
    if (PyLong_Check(v) && !PyBool_Check(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred()) return -1;
        if (overflow) {
            PyErr_SetString(PyExc_OverflowError, "command: an int beyond 64 bits");
            return -1;
        }
        int i = ll_digits(x, digits);
        *data = digits + i;
        return 24 - i;
    }
    PyErr_Format(PyExc_TypeError, "command: arguments are bytes, str or int, got %.80s", Py_TYPE(v)->tp_name);
    return -1;
}

static int decimal_len(Py_ssize_t n) {
    int d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

static char *put_decimal(char *at, Py_ssize_t n) {
    int d = decimal_len(n);
    for (int i = d - 1; i >= 0; i--) {
        at[i] = (char)('0' + n % 10);
        n /= 10;
    }
    return at + d;
}

/* The values of command(*args), a list or tuple argument standing for its items, walked twice: once
 * to size the command, once to write it. */
typedef struct {
    PyObject *const *args;
    Py_ssize_t nargs, arg, item;
} RespWalk;

static PyObject *resp_next(RespWalk *w) {
    while (w->arg < w->nargs) {
        PyObject *a = w->args[w->arg];
        if (PyList_Check(a)) {
            if (w->item < PyList_GET_SIZE(a)) return PyList_GET_ITEM(a, w->item++);
        } else if (PyTuple_Check(a)) {
            if (w->item < PyTuple_GET_SIZE(a)) return PyTuple_GET_ITEM(a, w->item++);
        } else {
            w->arg++;
            return a;
        }
        w->arg++;
        w->item = 0;
    }
    return NULL;
}

/* command(*args) -> bytes: one RESP command, an array of bulk strings. A list or tuple argument stands
 * for its items (each bytes, str or int; not nested), so a script call needs no tuple of all of them. */
static PyObject *command(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    RespWalk w = {args, nargs, 0, 0};
    Py_ssize_t count = 0, size = 0;
    char digits[24];
    const char *data;
    for (PyObject *v; (v = resp_next(&w)) != NULL;) {
        Py_ssize_t n = resp_arg(v, &data, digits);
        if (n < 0) return NULL;
        Py_ssize_t one = 1 + decimal_len(n) + 2 + n + 2;
        if (one > PY_SSIZE_T_MAX - 64 - size) return PyErr_NoMemory();
        size += one;
        count++;
    }
    if (count == 0) {
        PyErr_SetString(PyExc_ValueError, "command: no arguments");
        return NULL;
    }
    size += 1 + decimal_len(count) + 2;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) return NULL;
    char *at = PyBytes_AS_STRING(out), *end = at + size;
    *at++ = '*';
    at = put_decimal(at, count);
    *at++ = '\r';
    *at++ = '\n';
    w.arg = w.item = 0;
    for (PyObject *v; (v = resp_next(&w)) != NULL;) {
        Py_ssize_t n = resp_arg(v, &data, digits); /* the same values: nothing ran in between */
        if (n < 0 || end - at < 1 + decimal_len(n) + 4 + n) {
            if (n >= 0) PyErr_SetString(PyExc_RuntimeError, "command: an argument changed while it was packed");
            Py_DECREF(out);
            return NULL;
        }
        *at++ = '$';
        at = put_decimal(at, n);
        *at++ = '\r';
        *at++ = '\n';
        memcpy(at, data, (size_t)n);
        at += n;
        *at++ = '\r';
        *at++ = '\n';
    }
    if (at != end) {
        PyErr_SetString(PyExc_RuntimeError, "command: an argument changed while it was packed");
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* key_ends(body) -> int: how many times a quote is followed by a colon, whitespace (space, tab, CR,
 * LF) between them skipped: the keys of a JSON text that has no such pair inside its strings. */
static PyObject *key_ends(PyObject *module, PyObject *body) {
    (void)module;
    if (!PyBytes_Check(body)) {
        PyErr_SetString(PyExc_TypeError, "key_ends(body: bytes)");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(body);
    const unsigned char *end = p + PyBytes_GET_SIZE(body);
    Py_ssize_t count = 0;
    while ((p = memchr(p, '"', (size_t)(end - p))) != NULL) {
        p++;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
        if (p < end && *p == ':') count++;
    }
    return PyLong_FromSsize_t(count);
}

static PyObject *micro_usd(PyObject *module, PyObject *cost) {
    (void)module;
    if (!PyLong_Check(cost)) {
        PyErr_SetString(PyExc_TypeError, "micro_usd(cost: int)");
        return NULL;
    }
    Buf b;
    buf_init(&b);
    if (put_micro_usd(&b, cost) < 0) {
        buf_free(&b);
        return NULL;
    }
    PyObject *text = PyUnicode_FromStringAndSize(b.p, b.len);
    buf_free(&b);
    return text;
}

static PyMethodDef module_methods[] = {
    {"micro_usd", (PyCFunction)micro_usd, METH_O, "exact decimal USD text of integer micro-USD"},
    {"command", (PyCFunction)(void (*)(void))command, METH_FASTCALL, "one Redis command in RESP"},
    {"key_ends", (PyCFunction)key_ends, METH_O, "quotes followed by a colon (whitespace between skipped)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wiremodule = {PyModuleDef_HEAD_INIT, "opsmeter_wire._wire", NULL, -1, module_methods};

PyMODINIT_FUNC PyInit__wire(void) {
    if (PyType_Ready(&EncoderType) < 0 || PyType_Ready(&AnswersType) < 0 || PyType_Ready(&RecordsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&wiremodule);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0 ||
        PyModule_AddObjectRef(m, "Answers", (PyObject *)&AnswersType) < 0 ||
        PyModule_AddObjectRef(m, "Records", (PyObject *)&RecordsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
