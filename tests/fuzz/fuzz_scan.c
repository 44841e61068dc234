/*
 * fuzz_scan.c: the scan input readers (JSONL, CSV, text; the first byte picks the format and
 * whether a response field is wanted) and the output line of every item they produce.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../clients/lib/scan.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_scan_opts o;
    sg_scan_reader *r = NULL;
    sg_scan_item it;
    char err[256];
    FILE *f;

    if (size < 1)
        return 0;
    memset(&o, 0, sizeof o);
    o.format = (sg_scan_format)(data[0] % SG_SCAN_FORMAT_COUNT);
    o.response_field = (data[0] & 0x10) ? "response" : NULL;
    data++;
    size--;
    f = size ? fmemopen((void *)data, size, "r") : fopen("/dev/null", "r");
    if (!f)
        return 0;
    memset(&it, 0, sizeof it);
    if (sg_scan_reader_new(&r, f, &o, err, sizeof err) == 0) {
        while (sg_scan_reader_next(r, &it) == 1) {
            char *line = sg_scan_result_line(it.id, NULL, it.error ? it.error : "x");

            if (!line || line[strlen(line) - 1] != '\n')
                abort();
            if (!it.error && (!it.text || strlen(it.text) != it.text_len))
                abort();
            free(line);
        }
        sg_scan_item_clear(&it);
        sg_scan_reader_free(r);
    }
    fclose(f);
    return 0;
}
