/* test_names.c - qvm_name_valid, qvm_name_check, qvm_image_ref_parse. */
#include <errno.h>
#include <string.h>

#include "test.h"
#include "util/names.h"

static void rep(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
}

static void test_valid(void)
{
    char buf[256];

    CHECK(!qvm_name_valid(""), "empty name is invalid");
    CHECK(qvm_name_valid("a"), "one letter is valid");
    CHECK(qvm_name_valid("0"), "one digit is valid");
    CHECK(qvm_name_valid("9lives"), "leading digit is valid");
    CHECK(qvm_name_valid("web-01.prod_x"), "letters, digits, '.', '_', '-' mixed");
    CHECK(qvm_name_valid("a-"), "trailing '-' is valid");
    CHECK(qvm_name_valid("a_"), "trailing '_' is valid");
    CHECK(qvm_name_valid("a.b.c"), "single dots inside are valid");

    rep(buf, 'a', 63);
    CHECK(qvm_name_valid(buf), "63 characters is valid");
    rep(buf, 'a', 64);
    CHECK(!qvm_name_valid(buf), "64 characters is invalid");
    rep(buf, 'a', 200);
    CHECK(!qvm_name_valid(buf), "200 characters is invalid");

    CHECK(!qvm_name_valid("-a"), "leading '-' is invalid");
    CHECK(!qvm_name_valid(".a"), "leading '.' is invalid");
    CHECK(!qvm_name_valid("_a"), "leading '_' is invalid");
    CHECK(!qvm_name_valid("."), "'.' is invalid");
    CHECK(!qvm_name_valid(".."), "'..' is invalid");
    CHECK(!qvm_name_valid("a..b"), "'..' inside is invalid");
    CHECK(!qvm_name_valid("a."), "trailing '.' is invalid");
    CHECK(!qvm_name_valid("Abc"), "leading uppercase is invalid");
    CHECK(!qvm_name_valid("aBc"), "inner uppercase is invalid");
    CHECK(!qvm_name_valid("a/b"), "'/' is invalid");
    CHECK(!qvm_name_valid("/a"), "leading '/' is invalid");
    CHECK(!qvm_name_valid("a/"), "trailing '/' is invalid");
    CHECK(!qvm_name_valid("a b"), "space is invalid");
    CHECK(!qvm_name_valid("a\nb"), "newline is invalid");
    CHECK(!qvm_name_valid("a@b"), "'@' is invalid");
    CHECK(!qvm_name_valid("a:b"), "':' is invalid");
    CHECK(!qvm_name_valid("caf\xc3\xa9"), "UTF-8 bytes are invalid");
    CHECK(!qvm_name_valid("\xc3\xa9t\xc3\xa9"), "leading UTF-8 byte is invalid");
    CHECK(!qvm_name_valid("a\xff"), "0xff byte is invalid");
    CHECK(!qvm_name_valid("a\x7f"), "DEL is invalid");
}

static void test_check(void)
{
    struct qvm_error err = { 0 };
    char buf[256];

    CHECK(qvm_name_check("vm", "hello", &err) == 0, "check of a valid name returns 0");
    CHECK(err.code == 0, "valid name leaves the error untouched");
    CHECK(qvm_name_check("vm", "hello", NULL) == 0, "check accepts a NULL error");

    qvm_err_clear(&err);
    CHECK(qvm_name_check("vm", "", &err) == -EINVAL, "empty name: -EINVAL");
    CHECK(err.code == EINVAL, "empty name: code EINVAL");
    CHECK_STR(err.msg, "invalid vm name '': it is empty", "empty name message");

    qvm_err_clear(&err);
    rep(buf, 'x', 64);
    CHECK(qvm_name_check("pool", buf, &err) == -EINVAL, "64 chars: -EINVAL");
    CHECK_CONTAINS(err.msg, "invalid pool name 'xxxx", "64 chars message names kind and name");
    CHECK_CONTAINS(err.msg, ": it is longer than 63 characters", "64 chars message says why");

    qvm_err_clear(&err);
    rep(buf, 'y', 200);
    CHECK(qvm_name_check("image", buf, &err) == -EINVAL, "200 chars: -EINVAL");
    {
        char want[128];
        snprintf(want, sizeof want, "'%.80s':", buf);
        CHECK_CONTAINS(err.msg, want, "a long name is cut to 80 characters in the message");
        CHECK(strstr(err.msg, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy")
              == NULL, "no more than 80 name characters in the message");
    }

    qvm_err_clear(&err);
    CHECK(qvm_name_check("vm", "Hello", &err) == -EINVAL, "uppercase: -EINVAL");
    CHECK_STR(err.msg, "invalid vm name 'Hello': use lower-case letters, digits, '.', '_' and '-', "
              "starting with a letter or digit", "uppercase message");

    qvm_err_clear(&err);
    CHECK(qvm_name_check("vm", "../etc", &err) == -EINVAL, "path traversal: -EINVAL");
    CHECK_CONTAINS(err.msg, "invalid vm name '../etc': use lower-case", "path traversal message");

    qvm_err_clear(&err);
    CHECK(qvm_name_check("vm", "a.", &err) == -EINVAL, "trailing dot: -EINVAL");
    CHECK_CONTAINS(err.msg, "'a.'", "trailing dot message names the name");

    CHECK(qvm_name_check("vm", "-x", NULL) == -EINVAL, "invalid name with NULL error: -EINVAL");
}

static void test_ref(void)
{
    struct qvm_error err = { 0 };
    char img[QVM_NAME_MAX + 1], ver[QVM_NAME_MAX + 1];
    char buf[256];

    CHECK(qvm_image_ref_parse("img", img, ver, &err) == 0, "'img' parses");
    CHECK_STR(img, "img", "'img': image");
    CHECK_STR(ver, "", "'img': no version");

    CHECK(qvm_image_ref_parse("img@v2", img, ver, &err) == 0, "'img@v2' parses");
    CHECK_STR(img, "img", "'img@v2': image");
    CHECK_STR(ver, "v2", "'img@v2': version");

    CHECK(qvm_image_ref_parse("img@v10", img, ver, &err) == 0, "'img@v10' parses");
    CHECK_STR(ver, "v10", "'img@v10': version");

    CHECK(qvm_image_ref_parse("img@base", img, ver, &err) == 0, "'img@base' parses");
    CHECK_STR(img, "img", "'img@base': image");
    CHECK_STR(ver, "v1", "'img@base' is v1");

    CHECK(qvm_image_ref_parse("debian-12.5@v1", img, ver, NULL) == 0, "NULL error is accepted");
    CHECK_STR(img, "debian-12.5", "dotted image name");

    static const char *const bad_versions[] = {
        "img@v0", "img@x", "img@", "img@v", "img@V1", "img@1", "img@v01", "img@v1x", "img@v-1",
        "img@base1", "img@BASE", "img@v1@v2", "img@v12345678901",
    };
    for (size_t i = 0; i < sizeof bad_versions / sizeof bad_versions[0]; i++) {
        qvm_err_clear(&err);
        strcpy(img, "untouched");
        int r = qvm_image_ref_parse(bad_versions[i], img, ver, &err);
        CHECK(r == -EINVAL, "'%s' is refused with -EINVAL (got %d)", bad_versions[i], r);
        CHECK_CONTAINS(err.msg, "invalid image version", "'%s': message says the version is bad",
                       bad_versions[i]);
        CHECK_CONTAINS(err.msg, "expected vN or base", "'%s': message says what is expected",
                       bad_versions[i]);
        CHECK_STR(img, "untouched", "'%s': output untouched on error", bad_versions[i]);
    }
    qvm_err_clear(&err);
    qvm_image_ref_parse("img@v0", img, ver, &err);
    CHECK_STR(err.msg, "invalid image version 'v0' in 'img@v0': expected vN or base",
              "'img@v0' full message");

    CHECK(qvm_image_ref_parse("img@v999999999", img, ver, &err) == 0, "10-char version is accepted");
    CHECK_STR(ver, "v999999999", "10-char version");

    qvm_err_clear(&err);
    CHECK(qvm_image_ref_parse("Bad@v1", img, ver, &err) == -EINVAL, "'Bad@v1' is refused");
    CHECK_CONTAINS(err.msg, "invalid image name 'Bad'", "'Bad@v1': message names the image part");

    qvm_err_clear(&err);
    CHECK(qvm_image_ref_parse("@v1", img, ver, &err) == -EINVAL, "'@v1' is refused");
    CHECK_CONTAINS(err.msg, "invalid image name '': it is empty", "'@v1': empty image name");

    qvm_err_clear(&err);
    CHECK(qvm_image_ref_parse("", img, ver, &err) == -EINVAL, "'' is refused");
    CHECK_CONTAINS(err.msg, "it is empty", "'': empty");

    qvm_err_clear(&err);
    CHECK(qvm_image_ref_parse("a/b@v1", img, ver, &err) == -EINVAL, "'a/b@v1' is refused");

    rep(buf, 'i', 63);
    CHECK(qvm_image_ref_parse(buf, img, ver, &err) == 0, "63-char image name parses");
    CHECK_STR(img, buf, "63-char image name is copied whole");
    strcat(buf, "@v7");
    CHECK(qvm_image_ref_parse(buf, img, ver, &err) == 0, "63-char image name with version parses");
    CHECK_STR(ver, "v7", "63-char image name with version: version");

    qvm_err_clear(&err);
    rep(buf, 'i', 64);
    CHECK(qvm_image_ref_parse(buf, img, ver, &err) == -EINVAL, "64-char image name is refused");
    CHECK_CONTAINS(err.msg, "longer than 63 characters", "64-char image name message");

    qvm_err_clear(&err);
    rep(buf, 'i', 64);
    strcat(buf, "@v1");
    CHECK(qvm_image_ref_parse(buf, img, ver, &err) == -EINVAL, "64-char image name with version is refused");
    CHECK_CONTAINS(err.msg, "longer than 63 characters", "64-char image name with version message");

    qvm_err_clear(&err);
    rep(buf, 'z', 250);
    CHECK(qvm_image_ref_parse(buf, img, ver, &err) == -EINVAL, "250-char ref is refused");
    CHECK(strlen(err.msg) < 200, "250-char ref: message is bounded (%zu chars)", strlen(err.msg));
}

int main(void)
{
    test_valid();
    test_check();
    test_ref();
    return test_done();
}
