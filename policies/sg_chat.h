#ifndef SG_CHAT_H
#define SG_CHAT_H
/*
 * sg_chat.h: an OpenAI-style chat conversation -> the one input ShieldGemma classifies, shared
 * by the daemon (POST /v1/classify, /v1/check/chat/completions, the LiteLLM adapter) and
 * `shieldctl scan` (a "messages" field in JSONL) so that they map conversations the same way.
 *
 *   [{"role": "system"|"developer"|"user"|"assistant",
 *     "content": "..." | [{"type": "text", "text": "..."}, ...]}, ...]
 *
 * As ShieldGemma's chat template does: a conversation ending in a user turn is prompt-only mode
 * on that turn; one ending in an assistant turn is prompt-response mode on the last user turn
 * before it and that reply. Earlier turns and system / developer messages are not classified
 * (the model judges one exchange). The text parts of one message are joined with "\n".
 * Refused, with a message naming the message and the problem: no user turn, a conversation
 * ending in a system turn, an unknown role, a non-text part (image, audio, ...), empty content.
 */

#include <stddef.h>

#include <jansson.h>

typedef struct sg_chat_input {
    const char *text; /* the user turn; borrowed from the JSON or from owned[0] */
    size_t text_len;
    const char *response; /* the assistant reply; NULL: prompt-only */
    size_t response_len;
    char *owned[2]; /* joined multi-part contents, malloc'd (sg_chat_input_free) */
} sg_chat_input;

/*
 * Map `messages` (borrowed: the texts may point into it, keep it alive) into *out. `where`
 * prefixes messages ("inputs[2]: "). Returns 0, or -1 with the problem in `err` (*out freed).
 */
int sg_chat_map(const json_t *messages, const char *where, sg_chat_input *out, char *err,
                size_t errlen);

/* Free the owned texts and zero *in (NULL is fine). */
void sg_chat_input_free(sg_chat_input *in);

#endif /* SG_CHAT_H */
