/*
 * moderate_json.c: sg_moderate_result -> JSON (jansson), one function for the daemon and
 * shieldctl.
 */
#include "sg_moderate_json.h"

json_t *sg_moderate_result_json(const char *model, const sg_moderate_result *res)
{
    json_t *root = json_object();
    json_t *results = json_array();
    json_t *usage = json_object();
    int bad = 0;

    if (root == NULL || results == NULL || usage == NULL || res == NULL) {
        json_decref(root);
        json_decref(results);
        json_decref(usage);
        return NULL;
    }
    /* json_object_set_new steals its value even when it fails, so one check at the end. */
    if (model != NULL)
        bad |= json_object_set_new(root, "model", json_string(model));
    bad |= json_object_set_new(root, "results", results);
    bad |= json_object_set_new(root, "flagged", json_boolean(res->flagged));
    bad |= json_object_set_new(root, "usage", usage);
    for (size_t i = 0; i < res->n_scores && !bad; i++) {
        const sg_policy_score *s = &res->scores[i];

        bad |= json_array_append_new(results,
                                     json_pack("{s:s, s:f, s:b, s:f}", "policy", s->policy->name,
                                               "probability", s->probability, "violation",
                                               s->violation, "threshold", s->threshold));
    }
    bad |=
        json_object_set_new(usage, "prompt_tokens", json_integer((json_int_t)res->prompt_tokens));
    bad |= json_object_set_new(usage, "computed_tokens",
                               json_integer((json_int_t)res->computed_tokens));
    bad |= json_object_set_new(usage, "cached_tokens",
                               json_integer((json_int_t)res->cached_tokens));
    if (res->truncated)
        bad |= json_object_set_new(root, "truncated", json_true());
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

const char *sg_json_type_name(const json_t *v)
{
    if (v == NULL)
        return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}
