/*
 * The ACPI fixed hardware (acpi_pm.c): what the toolstack can do to it.
 */
#ifndef XEN_DEV_ACPI_PM_H
#define XEN_DEV_ACPI_PM_H

struct domain;

/*
 * Press the fixed-feature power button: PWRBTN_STS is set and, if the
 * guest enabled PWRBTN_EN, the SCI is raised.  Any thread.  0, or -1 if
 * the domain has no ACPI PM block.
 */
int acpi_pm_power_button(struct domain *dom);

#endif
