/* embedded.c: lookups in the files compiled into the binary. */
#include "ns/embedded.h"

#include <string.h>

const char *ns_embedded_find(const ns_embedded_file_t *files, int count,
                             const char *name)
{
    for (int i = 0; name != NULL && i < count; i++)
        if (strcmp(files[i].name, name) == 0)
            return files[i].data;
    return NULL;
}
