/* embedded.c: lookups in the files compiled into the binary. */
#include "ns/embedded.h"

#include <string.h>

const char *ns_structure_schema(const char *name)
{
    for (int i = 0; name != NULL && i < ns_structure_schemas_count; i++)
        if (strcmp(ns_structure_schemas[i].name, name) == 0)
            return ns_structure_schemas[i].data;
    return NULL;
}
