#ifndef SG_GGUF_GEMMA_H
#define SG_GGUF_GEMMA_H
/*
 * gguf_gemma.h (internal to engine/): a llama.cpp Gemma / Gemma 2 GGUF as an sg_weights with
 * Hugging Face tensor names and the hyper-parameters of its metadata. The container is read by
 * format/gguf.h; the GGUF tensor and key names of Gemma live here, in the model layer.
 */

#include "gguf.h"
#include "tensor.h"

/*
 * Open the GGUF at `path` and fill `w` (which the caller zeroed): w->info from the
 * general.architecture ("gemma2" or "gemma") keys with llama.cpp's defaults where absent;
 * tensors renamed to Hugging Face names with shapes outermost first; w->norm_plus_one = 1;
 * w->gguf = the open reader (for the tokenizer), which sg_weights_free() closes. Tensors
 * whose type the engine cannot read give SG_EUNSUPPORTED naming the tensor and the type; a
 * missing or mistyped required key SG_EFORMAT naming the key. Shapes are NOT checked against
 * info here (the model loader does that). On failure `w` is left zeroed and `err` says why.
 */
int sg_gguf_load(const char *path, sg_weights *w, char *err, size_t errlen);
/* The same over a parsed handle; on success `w` takes ownership of `g`, on failure the caller
 * keeps it. */
int sg_gguf_load_from(sg_gguf *g, sg_weights *w, char *err, size_t errlen);

#endif /* SG_GGUF_GEMMA_H */
