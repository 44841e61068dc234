/*
 * chat.c: chat messages -> ShieldGemma's one classified exchange (see sg_chat.h).
 */
#include "sg_chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_moderate_json.h"

/* Check the parts of an array content; *total receives the joined length. */
static int check_parts(const json_t *c, const char *where, size_t *total, char *err, size_t errlen)
{
    size_t i;
    json_t *p;

    *total = 0;
    json_array_foreach(c, i, p)
    {
        const char *type = json_string_value(json_object_get(p, "type"));
        const json_t *t = json_object_get(p, "text");

        if (type == NULL) {
            snprintf(err, errlen, "%s'content[%zu]' must be an object with a 'type'", where, i);
            return -1;
        }
        if (strcmp(type, "text") != 0) {
            snprintf(err, errlen,
                     "%s'content[%zu]' is a '%.32s' part: only text parts can be classified", where,
                     i, type);
            return -1;
        }
        if (!json_is_string(t)) {
            snprintf(err, errlen, "%s'content[%zu].text' must be a string", where, i);
            return -1;
        }
        *total += json_string_length(t) + (i > 0);
    }
    return 0;
}

/* The text of one message's `content` into *s (borrowed, or a joined copy in *owned). */
static int content(const json_t *c, const char *where, const char **s, size_t *len, char **owned,
                   char *err, size_t errlen)
{
    size_t i, total;
    json_t *p;

    if (json_is_string(c)) {
        *s = json_string_value(c);
        *len = json_string_length(c);
    } else if (json_is_array(c)) {
        if (check_parts(c, where, &total, err, errlen) < 0)
            return -1;
        if (json_array_size(c) == 1) {
            const json_t *t = json_object_get(json_array_get(c, 0), "text");

            *s = json_string_value(t);
            *len = json_string_length(t);
        } else {
            char *buf = malloc(total + 1);

            if (buf == NULL) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            *len = 0;
            json_array_foreach(c, i, p)
            {
                const json_t *t = json_object_get(p, "text");

                if (i > 0)
                    buf[(*len)++] = '\n';
                memcpy(buf + *len, json_string_value(t), json_string_length(t));
                *len += json_string_length(t);
            }
            buf[*len] = '\0';
            *owned = buf;
            *s = buf;
        }
    } else {
        snprintf(err, errlen, "%s'content' must be a string or an array of text parts, not %s",
                 where, sg_json_type_name(c));
        return -1;
    }
    if (*len == 0) {
        snprintf(err, errlen, "%s'content' is empty", where);
        return -1;
    }
    return 0;
}

/* Check every role; *last_user receives the index of the last user turn ((size_t)-1: none). */
static int check_roles(const json_t *msgs, const char *where, size_t *last_user, char *err,
                       size_t errlen)
{
    *last_user = (size_t)-1;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        const char *role = json_string_value(json_object_get(m, "role"));

        if (!json_is_object(m) || role == NULL) {
            snprintf(err, errlen, "%smessages[%zu]: must be an object with a string 'role'", where,
                     i);
            return -1;
        }
        if (strcmp(role, "user") == 0)
            *last_user = i;
        else if (strcmp(role, "assistant") != 0 && strcmp(role, "system") != 0 &&
                 strcmp(role, "developer") != 0) {
            snprintf(err, errlen,
                     "%smessages[%zu]: unknown role '%.32s' (system, developer, user or "
                     "assistant)",
                     where, i, role);
            return -1;
        }
    }
    if (*last_user == (size_t)-1) {
        snprintf(err, errlen, "%s'messages' has no user turn to classify", where);
        return -1;
    }
    return 0;
}

int sg_chat_map(const json_t *msgs, const char *where, sg_chat_input *out, char *err, size_t errlen)
{
    size_t n, last_user;
    char at[128];

    memset(out, 0, sizeof *out);
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        snprintf(err, errlen, "%s'messages' must be a non-empty array of {role, content}", where);
        return -1;
    }
    if (check_roles(msgs, where, &last_user, err, errlen) < 0)
        return -1;
    n = json_array_size(msgs);
    if (last_user + 1 < n) {
        const json_t *m = json_array_get(msgs, n - 1);
        const char *role = json_string_value(json_object_get(m, "role"));

        if (strcmp(role, "assistant") != 0) {
            snprintf(err, errlen,
                     "%s'messages' must end with a user or an assistant turn, not '%.32s'", where,
                     role);
            return -1;
        }
        snprintf(at, sizeof at, "%smessages[%zu]: ", where, n - 1);
        if (content(json_object_get(m, "content"), at, &out->response, &out->response_len,
                    &out->owned[1], err, errlen) < 0)
            goto fail;
    }
    snprintf(at, sizeof at, "%smessages[%zu]: ", where, last_user);
    if (content(json_object_get(json_array_get(msgs, last_user), "content"), at, &out->text,
                &out->text_len, &out->owned[0], err, errlen) < 0)
        goto fail;
    return 0;
fail:
    sg_chat_input_free(out);
    return -1;
}

void sg_chat_input_free(sg_chat_input *in)
{
    if (in == NULL)
        return;
    free(in->owned[0]);
    free(in->owned[1]);
    memset(in, 0, sizeof *in);
}
