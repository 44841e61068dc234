#ifndef SG_MODERATE_JSON_H
#define SG_MODERATE_JSON_H
/*
 * sg_moderate_json.h: the JSON of one classification, shared by the daemon (POST /v1/classify)
 * and shieldctl (classify --json) so that the two print the same object:
 *
 *   {"model": "...", "results": [{"policy": "hate", "probability": 0.031, "violation": false,
 *    "threshold": 0.5}, ...], "flagged": false,
 *    "usage": {"prompt_tokens": N, "computed_tokens": M}}   (+ "truncated": true when cut)
 */

#include <jansson.h>

#include "sg_moderate.h"

/*
 * Build the object above for `res` (scores in their order). `model` NULL leaves the "model"
 * key out (the per-input objects of a batch reply). New reference, the caller decrefs; NULL
 * when out of memory. Print it with JSON_REAL_PRECISION(17) to keep every bit of the
 * probabilities.
 */
json_t *sg_moderate_result_json(const char *model, const sg_moderate_result *res);

/* "an object", "a string", "a number", "null", ... for messages about a JSON value of the wrong
 * type; "missing" for NULL. Static. */
const char *sg_json_type_name(const json_t *v);

#endif /* SG_MODERATE_JSON_H */
