/* SPDX-License-Identifier: MIT */
/* The intrusive list and the CAS flag. */
#include <criterion/criterion.h>

#include "casflag.h"
#include "list.h"

struct item {
    int value;
    struct iocp_list node;
};

static int collect(struct iocp_list *head, int *out, int max)
{
    struct iocp_list *pos;
    int n = 0;
    iocp_list_foreach(pos, head)
    {
        if (n < max)
            out[n] = iocp_list_entry(pos, struct item, node)->value;
        n++;
    }
    return n;
}

Test(list, new_list_is_empty_and_has_no_first)
{
    struct iocp_list head;
    iocp_list_init(&head);
    cr_expect(iocp_list_empty(&head));
    cr_expect_null(iocp_list_first(&head));
}

Test(list, insert_head_and_tail_keep_order)
{
    struct iocp_list head;
    struct item a = {.value = 1}, b = {.value = 2}, c = {.value = 3};
    int got[3];
    iocp_list_init(&head);
    iocp_list_insert_tail(&head, &b.node);
    iocp_list_insert_head(&head, &a.node);
    iocp_list_insert_tail(&head, &c.node);
    cr_assert_eq(collect(&head, got, 3), 3);
    cr_expect_eq(got[0], 1);
    cr_expect_eq(got[1], 2);
    cr_expect_eq(got[2], 3);
    cr_expect_eq(iocp_list_first(&head), &a.node);
}

Test(list, remove_twice_is_harmless)
{
    struct iocp_list head;
    struct item a = {.value = 1}, b = {.value = 2};
    int got[2];
    iocp_list_init(&head);
    iocp_list_insert_tail(&head, &a.node);
    iocp_list_insert_tail(&head, &b.node);
    iocp_list_remove(&a.node);
    cr_expect_not(iocp_list_linked(&a.node));
    iocp_list_remove(&a.node);
    cr_assert_eq(collect(&head, got, 2), 1);
    cr_expect_eq(got[0], 2);
}

Test(list, safe_walk_may_remove_the_current_node)
{
    struct iocp_list head, *pos, *tmp;
    struct item items[5];
    int got[5];
    iocp_list_init(&head);
    for (int i = 0; i < 5; i++) {
        items[i].value = i;
        iocp_list_insert_tail(&head, &items[i].node);
    }
    iocp_list_foreach_safe(pos, tmp, &head)
    {
        if (iocp_list_entry(pos, struct item, node)->value % 2 == 0)
            iocp_list_remove(pos);
    }
    cr_assert_eq(collect(&head, got, 5), 2);
    cr_expect_eq(got[0], 1);
    cr_expect_eq(got[1], 3);
}

Test(casflag, raise_and_lower_succeed_once_each)
{
    struct iocp_casflag flag;
    iocp_casflag_init(&flag, false);
    cr_expect(iocp_casflag_raise(&flag));
    cr_expect_not(iocp_casflag_raise(&flag), "a second raise must fail");
    cr_expect(iocp_casflag_get(&flag));
    cr_expect(iocp_casflag_lower(&flag));
    cr_expect_not(iocp_casflag_lower(&flag), "a second lower must fail");
    cr_expect_not(iocp_casflag_get(&flag));
}
