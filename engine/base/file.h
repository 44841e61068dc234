#ifndef SG_FILE_H
#define SG_FILE_H
/*
 * file.h (internal to engine/): the engine's one reader of small whole files, sg_read_file(),
 * is public (the policies library reads its files with it too), so it is declared in
 * sg_engine.h; this header stays for the engine files that include it by its subject.
 */

#include "sg_engine.h"

#endif /* SG_FILE_H */
