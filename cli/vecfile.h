/*
 * vecfile.h — streaming readers for the vector files the `cairn` tool
 * imports and takes queries from. One row at a time; memory stays bounded
 * by one row whatever the file size.
 *
 * FORMATS
 *   jsonl  one JSON object per line:
 *            {"id": <u64>, "vector": [numbers], "payload": {...}}
 *          "payload" is optional (absent or null: no payload); any other key
 *          is an error (a misspelt key would otherwise be dropped silently).
 *          Blank lines are skipped. ids are limited to 0..2^63-1 (the range
 *          of jansson integers). Every row must have the first row's length.
 *   fvecs  per row: int32 dim (little-endian), then dim float32. Every row
 *          must have the first row's dim.
 *   npy    NumPy format 1.0/2.0/3.0 holding a 2-D C-order little-endian
 *          float32 array: header dict with descr '<f4', fortran_order False,
 *          shape (rows, dim). Anything else is refused with the reason.
 *   idx    IDX (MNIST / Fashion-MNIST): magic 0x0000 08 NN (unsigned byte,
 *          NN dimensions), NN big-endian u32 sizes; rows = first size, the
 *          row length is the product of the others. Bytes become floats
 *          0..255 unchanged.
 *   Any of them may be gzip-compressed ("NAME.gz"): the file is read through
 *   a `gzip -dc` child process (no zlib dependency); offsets in messages are
 *   then offsets in the decompressed stream.
 *
 * ids and payloads of binary rows (fvecs, npy, idx): id = start_id + row
 * (row counted from 0 in the file). Payload {"row": N}; for an IDX images
 * file with a matching labels file next to it (the name with "images" ->
 * "labels" and "idx3" -> "idx1", compressed or not: train-images-idx3-ubyte.gz
 * -> train-labels-idx1-ubyte.gz) the payload is {"label": L} instead.
 *
 * ERRORS name the file and where: "line N" (jsonl) or "row N (offset B)"
 * (binary), in the grammar of the project:
 *   could not parse "data.jsonl" at line 12: "vector"[3] is not a number
 *   could not read "x.fvecs" at row 5 (offset 15780): file ends inside the row
 */
#ifndef CAIRN_CLI_VECFILE_H
#define CAIRN_CLI_VECFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vf_format { VF_AUTO = 0, VF_JSONL, VF_FVECS, VF_NPY, VF_IDX };

/* "auto", "jsonl", "fvecs", "npy", "idx" */
const char *vf_format_name(enum vf_format f);
bool vf_format_parse(const char *s, enum vf_format *out);

struct vf_opts {
    enum vf_format format; /* VF_AUTO: by name, then by content */
    uint64_t start_id;     /* binary formats: id of row 0 */
    bool labels;           /* idx: look for a labels file */
};

struct vf_row {
    uint64_t id;
    uint64_t row;        /* 0-based row (jsonl: non-blank line) in the file */
    uint64_t line;       /* jsonl: 1-based line number; else 0 */
    const float *vec;    /* dim floats, valid until the next vf_next() */
    uint32_t dim;
    const char *payload; /* NUL-terminated JSON object text, or NULL */
    size_t payload_len;
};

typedef struct vf_reader vf_reader;

/* Opens path and reads its header. On failure returns false with a message
 * in err. */
bool vf_open(const char *path, const struct vf_opts *o, vf_reader **out,
             char *err, size_t errlen);
enum vf_format vf_format_of(const vf_reader *r);
/* Row length; 0 while unknown (jsonl before its first row). */
uint32_t vf_dim(const vf_reader *r);
/* Number of rows when the header or the file size tells it, else 0. */
uint64_t vf_rows(const vf_reader *r);
/* Input bytes consumed so far (decompressed bytes for .gz). */
uint64_t vf_bytes(const vf_reader *r);
/* The labels file in use (idx), or NULL. */
const char *vf_labels_path(const vf_reader *r);
/* A warning from vf_open (e.g. a labels file that does not match), or NULL. */
const char *vf_warning(const vf_reader *r);

/* Reads the next row: 1 = row, 0 = end of file, -1 = error (vf_error()). */
int vf_next(vf_reader *r, struct vf_row *row);
/* Skips n rows (seeks when the file allows). 0 ok, -1 error or the file
 * holds fewer rows (vf_error()). */
int vf_skip(vf_reader *r, uint64_t n);
const char *vf_error(const vf_reader *r);

/* Closes; for .gz, reaps the gzip process. NULL is a no-op. Returns false
 * if gzip failed after the whole stream was read (the data may be
 * incomplete); the message is in err. */
bool vf_close(vf_reader *r, char *err, size_t errlen);

#endif
