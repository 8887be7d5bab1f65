/* models/gru4rec_settings.h - the GRU4Rec hyperparameters with their defaults, bounds and help, written
 * once (the official retailrocket BPR-max values).
 *
 * GRU4REC_HPARAMS(BOOL, INT, DBL) expands, in order, one of
 *     BOOL(key, field, default, help)
 *     INT(key, field, default, min, max, help)
 *     DBL(key, field, default, min, max, help)
 * per scalar hyperparameter: key is the setting's name (config file key, `--key` flag), field the member
 * of gru4rec_hparams (models/gru4rec.h) and of the trainer's settings struct, bounds inclusive. The two
 * that are not scalars have their defaults as GRU4REC_DEFAULT_LOSS (a loss name) and
 * GRU4REC_DEFAULT_LAYER (one layer of that size; GRU4REC_DEFAULT_LAYERS_JSON is the same as a JSON array).
 * Users: gru4rec_hparams_default (models/gru4rec.c) and the settings table of `recd train gru4rec`
 * (trainer/train_gru4rec.c), which also converts its settings to gru4rec_hparams through this list.
 */
#ifndef RECD_GRU4REC_SETTINGS_H
#define RECD_GRU4REC_SETTINGS_H

#define GRU4REC_DEFAULT_LOSS "bpr-max"
#define GRU4REC_DEFAULT_LAYER 224
#define GRU4REC_STR_(x) #x
#define GRU4REC_STR(x) GRU4REC_STR_(x)
#define GRU4REC_DEFAULT_LAYERS_JSON "[" GRU4REC_STR(GRU4REC_DEFAULT_LAYER) "]"

#define GRU4REC_HPARAMS(BOOL, INT, DBL)                                                                  \
    BOOL("constrained_embedding", constrained, 1, "input embedding = output embedding")                  \
    INT("embedding", embedding, 0, 0, 65536, "separate input embedding size (0 and not constrained: one-hot input)") \
    DBL("elu_param", elu_param, 0.5, 0, 100, "BPR-max: ELU parameter of the scores (0: off)")            \
    DBL("bpreg", bpreg, 1.95, 0, 1e6, "BPR-max score regularisation")                                    \
    DBL("logq", logq, 0, 0, 100, "cross-entropy logQ correction weight")                                 \
    INT("batch_size", batch_size, 80, 1, 65536, "sessions per mini-batch")                               \
    INT("n_sample", n_sample, 2048, 0, 1 << 24, "shared negative samples per mini-batch")                \
    DBL("sample_alpha", sample_alpha, 0.4, 0, 10, "negatives drawn ~ popularity^alpha")                  \
    INT("sample_cache", sample_cache, 10000000, 1, 1e10, "precomputed negative samples")                 \
    DBL("learning_rate", learning_rate, 0.05, 1e-9, 100, "AdaGrad learning rate")                        \
    DBL("momentum", momentum, 0.4, 0, 0.999999, "momentum")                                              \
    DBL("dropout_p_embed", dropout_embed, 0.5, 0, 0.99, "dropout on the input embedding")                \
    DBL("dropout_p_hidden", dropout_hidden, 0.05, 0, 0.99, "dropout on the GRU outputs")

#endif
