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
