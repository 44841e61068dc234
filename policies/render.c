/* render.c: the exact prompt text of a policy for a request (shieldctl render). */
#include "sg_moderate.h"

#include <stdlib.h>
#include <string.h>

int sg_moderate_render(const sg_policy_set *set, const sg_policy *policy, const char *text,
                       const char *response, char **out)
{
    sg_prompt_part parts[SG_PROMPT_MAX_PARTS];
    sg_prompt_mode mode = response ? SG_MODE_RESPONSE : SG_MODE_PROMPT;
    size_t total = 0;
    size_t off = 0;
    char *s;
    int n;

    if (!out)
        return SG_EINVAL;
    *out = NULL;
    if (!text)
        return SG_EINVAL;
    n = sg_policy_render(set, policy, mode, text, strlen(text), response,
                         response ? strlen(response) : 0, parts);
    if (n < 0)
        return SG_EINVAL;
    for (int i = 0; i < n; i++)
        total += parts[i].len;
    s = malloc(total + 1);
    if (!s)
        return SG_ENOMEM;
    for (int i = 0; i < n; i++) {
        memcpy(s + off, parts[i].text, parts[i].len);
        off += parts[i].len;
    }
    s[off] = '\0';
    *out = s;
    return SG_OK;
}
