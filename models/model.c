#include "models/model.h"

#include "models/gru4rec.h"
#include "models/widedeep.h"

#include <string.h>

/* One line per model type. */
static const model_type *const model_types[] = {
    &gru4rec_type,
    &widedeep_type,
    NULL,
};

const model_type *model_type_find(const char *name)
{
    for (size_t i = 0; model_types[i]; i++)
        if (strcmp(model_types[i]->name, name) == 0) return model_types[i];
    return NULL;
}
