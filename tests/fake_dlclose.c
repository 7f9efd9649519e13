/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only: a dlclose() that unloads nothing, preloaded into the sanitizer
 * build's integration tests so that LeakSanitizer can still name the frames
 * of a PKCS#11 module (SoftHSM2) after custody has closed it, and lsan.supp
 * can match them. pkcs11-provider's test suite does the same.
 */
int dlclose(void *handle);

int
dlclose(void *handle)
{
	(void)handle;
	return 0;
}
