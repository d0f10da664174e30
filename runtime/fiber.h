/* fiber.h — private to nuproc: tell ASan, TSan and Valgrind about stack
 * switches. Every switch in the runtime goes through sched.c, which calls
 * these around nu__ctx_switch(); in a build without the tools they are
 * empty inline functions.
 *
 * ASan: __sanitizer_start_switch_fiber before leaving a stack (NULL fake-
 * stack slot when the leaving context is dead, so ASan frees its fake
 * frames), __sanitizer_finish_switch_fiber first thing after arriving.
 * A reused slot's stack may still carry poison from its last process, so
 * spawn unpoisons the stack window.
 * TSan: one fiber per process, switched to before the jump.
 * Valgrind: each slot's stack window is registered once, when carved.
 */
#ifndef NU_FIBER_H
#define NU_FIBER_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define NU__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NU__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define NU__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NU__TSAN 1
#endif
#endif

#ifdef NU__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef NU__TSAN
#include <sanitizer/tsan_interface.h>
#endif
#ifdef NU_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

/* About to leave the current stack for [bottom, bottom+size). fake_save
 * NULL means the current context will never run again. */
static inline void nu__fiber_leave(void **fake_save, const void *bottom,
				   size_t size)
{
#ifdef NU__ASAN
	__sanitizer_start_switch_fiber(fake_save, bottom, size);
#else
	(void)fake_save, (void)bottom, (void)size;
#endif
}

/* Just arrived on a stack that left with fake_save. */
static inline void nu__fiber_arrive(void *fake_save)
{
#ifdef NU__ASAN
	__sanitizer_finish_switch_fiber(fake_save, NULL, NULL);
#else
	(void)fake_save;
#endif
}

/* Clear stale poison from a stack window about to be reused. */
static inline void nu__fiber_unpoison(void *lo, size_t size)
{
#ifdef NU__ASAN
	__asan_unpoison_memory_region(lo, size);
#else
	(void)lo, (void)size;
#endif
}

/* TSan: the fiber to announce before jumping to a context. */
static inline void *nu__fiber_tsan_new(void)
{
#ifdef NU__TSAN
	return __tsan_create_fiber(0);
#else
	return NULL;
#endif
}
static inline void *nu__fiber_tsan_current(void)
{
#ifdef NU__TSAN
	return __tsan_get_current_fiber();
#else
	return NULL;
#endif
}
static inline void nu__fiber_tsan_switch(void *fiber)
{
#ifdef NU__TSAN
	if (fiber)
		__tsan_switch_to_fiber(fiber, 0);
#else
	(void)fiber;
#endif
}
static inline void nu__fiber_tsan_free(void *fiber)
{
#ifdef NU__TSAN
	if (fiber)
		__tsan_destroy_fiber(fiber);
#else
	(void)fiber;
#endif
}

/* Valgrind: register a stack window once (the id is never released: the
 * slot keeps its stack for the node's life). */
static inline void nu__fiber_register_stack(void *lo, void *hi)
{
#ifdef NU_HAVE_VALGRIND
	if (RUNNING_ON_VALGRIND)
		(void)VALGRIND_STACK_REGISTER(lo, hi);
#else
	(void)lo, (void)hi;
#endif
}

#endif
