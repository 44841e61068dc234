/*
 * fuzz_policy.c: libFuzzer target for the policy loader. The first input byte picks the file
 * under test (even: a policy file next to a valid template; odd: the template next to a valid
 * policy); the rest is its content. Every load must end in SG_POLICY_OK or an error whose
 * message names the file, never in a crash or a leak; a loaded set must render.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sg_moderate.h"
#include "sg_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char good_template[] =
    "description: t\n"
    "prompt: \"<bos>Q: {USER}\\n* {GUIDELINE}\\n\"\n"
    "response: \"<bos>Q: {USER}\\nA: {RESPONSE}\\n* {GUIDELINE}\\n\"\n"
    "answer_yes: \"Yes\"\n"
    "answer_no: \"No\"\n";

static const char good_policy[] = "name: demo\ntitle: Demo\ndescription: d\nguideline:\n"
                                  "  prompt: a\n  response: b\nthreshold: 0.5\nenabled: true\n";

static char dir[64];

static void put(const char *name, const void *data, size_t len)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f)
        abort();
    if (len && fwrite(data, 1, len, f) != len)
        abort();
    fclose(f);
}

static void cleanup(void)
{
    char path[128];

    snprintf(path, sizeof path, "%s/template.yaml", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_policy_set *set = NULL;
    char err[512];
    int rc;

    if (!dir[0]) {
        if (mkdtemp(strcpy(dir, "/tmp/fuzz-policy-XXXXXX")) == NULL)
            abort();
        atexit(cleanup);
    }
    if (size == 0)
        return 0;
    if (data[0] & 1) {
        put("template.yaml", data + 1, size - 1);
        put("p.yaml", good_policy, strlen(good_policy));
    } else {
        put("template.yaml", good_template, strlen(good_template));
        put("p.yaml", data + 1, size - 1);
    }
    rc = sg_policy_set_load(&set, dir, err, sizeof err);
    if (rc == SG_POLICY_OK) {
        for (size_t i = 0; i < sg_policy_count(set); i++) {
            char *out = NULL;

            if (sg_moderate_render(set, sg_policy_at(set, i), "user", NULL, &out) != SG_OK)
                abort();
            free(out);
            if (sg_moderate_render(set, sg_policy_at(set, i), "user", "resp", &out) != SG_OK)
                abort();
            free(out);
        }
        sg_policy_set_free(set);
    } else if (set != NULL || strstr(err, dir) == NULL) {
        abort(); /* a failure leaves no set and names the file or the directory */
    }
    return 0;
}
