/*
 * check_main.c: one SRunner over every tests/check_NAME.c suite (discovered by the Makefile
 * into build/gen/suites.h). Fork mode stays on; use CK_FORK=no under gdb or valgrind.
 * A suite name as the first argument runs only that suite (CK_RUN_SUITE works too).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#define SG_SUITE(name) Suite *name##_suite(void);
#include "suites.h"
#undef SG_SUITE

int main(int argc, char **argv)
{
    SRunner *sr = srunner_create(NULL);
    int failed;

#define SG_SUITE(name)                                                                             \
    if (argc < 2 || strcmp(argv[1], #name) == 0)                                                   \
        srunner_add_suite(sr, name##_suite());
#include "suites.h"
#undef SG_SUITE

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
