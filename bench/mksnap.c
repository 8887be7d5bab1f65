/* bench/mksnap.c - publish a random GRU4Rec snapshot with a real item vocabulary, for serving benchmarks
 * before (or instead of) a trained model: same shape as the trained one (N items from the file, H units).
 *
 *   cc -O2 -I. bench/mksnap.c obj/librecd.a $(pkg-config --libs ...) -o mksnap
 *   mksnap TRAIN.tsv ROOT NAME H SEED      (TRAIN.tsv: session_id<TAB>item_id<TAB>timestamp with a header)
 * Prints the published version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/idmap.h"
#include "models/gru4rec.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: mksnap TRAIN.tsv ROOT NAME H SEED\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    idmap *items = idmap_new(1 << 16);
    size_t cap = 1 << 16;
    int64_t *counts = calloc(cap, sizeof *counts);
    char line[4096];
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        if (first) {
            first = 0;
            continue;
        }
        char *t1 = strchr(line, '\t');
        if (!t1) continue;
        char *t2 = strchr(t1 + 1, '\t');
        if (!t2) continue;
        int64_t idx = idmap_intern(items, t1 + 1, (size_t)(t2 - t1 - 1));
        if (idx < 0) return 1;
        if ((size_t)idx >= cap) {
            counts = realloc(counts, 2 * cap * sizeof *counts);
            memset(counts + cap, 0, cap * sizeof *counts);
            cap *= 2;
        }
        counts[idx]++;
    }
    fclose(f);
    gru4rec_hparams hp;
    gru4rec_hparams_default(&hp);
    hp.layers[0] = atoi(argv[4]);
    gru4rec *m;
    if (gru4rec_new_random(&m, &hp, items, counts, strtoull(argv[5], NULL, 10)) != RC_OK) {
        fprintf(stderr, "mksnap: %s\n", rc_errmsg());
        return 1;
    }
    uint64_t v;
    if (gru4rec_save(m, argv[2], argv[3], NULL, &v) != RC_OK) {
        fprintf(stderr, "mksnap: %s\n", rc_errmsg());
        return 1;
    }
    printf("%llu\n", (unsigned long long)v);
    fprintf(stderr, "mksnap: %zu items, H=%d -> %s/%s/%llu\n", idmap_size(items), hp.layers[0], argv[2], argv[3],
            (unsigned long long)v);
    gru4rec_free(m);
    idmap_free(items);
    free(counts);
    return 0;
}
