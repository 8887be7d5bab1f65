#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "tests/testlib.h"

TEST(err_message_and_code)
{
    ASSERT_EQ(rc_error(RC_EINVAL, "bad %s at line %d", "k", 3), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "bad k at line 3");
    ASSERT_EQ(rc_wrap(RC_EINVAL, "config %s", "a.json"), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "config a.json: bad k at line 3");
    ASSERT_STR_EQ(rc_strerror(RC_ENOMEM), "out of memory");
    ASSERT_STR_EQ(rc_strerror(-999), "unknown error");
    rc_clear();
    ASSERT_STR_EQ(rc_errmsg(), "");
}

TEST(log_level_names)
{
    ASSERT_EQ(log_level_parse("debug"), LOG_LVL_DEBUG);
    ASSERT_EQ(log_level_parse("error"), LOG_LVL_ERROR);
    ASSERT_EQ(log_level_parse("loud"), -1);
}

/* Truncation keeps the message a valid C string of at most 511 bytes, also through rc_wrap; a message
 * may be built from the current one. */
TEST(err_truncation_and_self_reference)
{
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rc_error(RC_EIO, "%s", big);
    ASSERT_EQ(strlen(rc_errmsg()), 511);
    rc_wrap(RC_EIO, "ctx");
    ASSERT_EQ(strlen(rc_errmsg()), 511);
    ASSERT(strncmp(rc_errmsg(), "ctx: xxx", 8) == 0);
    rc_wrap(RC_EIO, "%s", big); /* a prefix longer than its 255-byte cut */
    ASSERT_EQ(strlen(rc_errmsg()), 511);
    ASSERT(strncmp(rc_errmsg() + 255, ": ctx: ", 7) == 0);
    rc_error(RC_EINVAL, "inner");
    ASSERT_EQ(rc_error(RC_EIO, "outer (%s) again %s", rc_errmsg(), rc_errmsg()), RC_EIO);
    ASSERT_STR_EQ(rc_errmsg(), "outer (inner) again inner");
}

/* Messages are per thread: another thread's error does not replace this one. */
#include <pthread.h>
static void *other_thread(void *arg)
{
    (void)arg;
    rc_error(RC_ENOMEM, "from the other thread");
    return (void *)(long)(strcmp(rc_errmsg(), "from the other thread") == 0);
}

TEST(err_thread_local)
{
    rc_error(RC_EINVAL, "mine");
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, other_thread, NULL), 0);
    void *ok;
    pthread_join(t, &ok);
    ASSERT(ok != NULL);
    ASSERT_STR_EQ(rc_errmsg(), "mine");
}
