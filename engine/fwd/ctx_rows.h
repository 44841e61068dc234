#ifndef SG_CTX_ROWS_H
#define SG_CTX_ROWS_H
/*
 * ctx_rows.h: a context's key/value rows, for the prefix cache (prefix.c) only. Rows live in
 * the context's cache as [layer][slot][kv_dim] f32; a trunk token at position p is slot p.
 */

#include <stddef.h>
#include <stdint.h>

#include "sg_engine.h"

/* The key (which = 0) or value (which = 1) row of `layer` at trunk slot `slot`: kv_dim floats. */
float *sg_ctx_kv_row(sg_ctx *c, int which, int layer, size_t slot);
/* The model and the precision (an sg_precision) the context computes with. */
const sg_model *sg_ctx_model(const sg_ctx *c);
int sg_ctx_precision(const sg_ctx *c);
/* The trunk capacity (n_ctx) of the context. */
size_t sg_ctx_capacity(const sg_ctx *c);
/*
 * The caller wrote the rows of ids[len..n) into slots len..n (len = the trunk's length now):
 * the trunk becomes ids[0..n). Nothing is computed. SG_EINVAL if n is below len or over the
 * capacity.
 */
int sg_ctx_adopt(sg_ctx *c, const int32_t *ids, size_t n);
/* Set the context's error message (sg_ctx_errmsg) and return rc. */
int sg_ctx_fail(sg_ctx *c, int rc, const char *msg);

#endif /* SG_CTX_ROWS_H */
