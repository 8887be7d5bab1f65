/* models/model.c - the list of served model types (models/model.h). */
#include "models/model.h"

#include <string.h>

/* One line per model type: X(name) registers `const model_type name_type` (defined in models/name.c). */
#define MODEL_TYPES(X) \
    X(gru4rec)         \
    X(widedeep)        \
    X(itemknn)         \
    X(autorec)         \
    X(biasedmf)        \
    X(rbm)             \
    X(llorma)          \
    /* add a line above: X(name) */

#define DECLARE(name) extern const model_type name##_type;
MODEL_TYPES(DECLARE)
#define ENTRY(name) &name##_type,
static const model_type *const model_types[] = {MODEL_TYPES(ENTRY) NULL};

const model_type *model_type_find(const char *name)
{
    for (size_t i = 0; model_types[i]; i++)
        if (strcmp(model_types[i]->name, name) == 0) return model_types[i];
    return NULL;
}

const model_type *model_type_at(int i)
{
    if (i < 0 || (size_t)i >= sizeof model_types / sizeof model_types[0] - 1) return NULL;
    return model_types[i];
}
