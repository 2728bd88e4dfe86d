/** What the chat tests ask about: a small handbook, and a question it answers. */

export const handbook = {
  title: "Handbook",
  source: "api",
  content: [
    "# Security",
    "",
    "API keys are rotated every 90 days by the security team. Old API keys keep working for one day after rotation.",
    "",
    "# Canteen",
    "",
    "The canteen serves lunch from noon to two o'clock. Vegetarian dishes are marked green on the menu."
  ].join("\n")
}

export const question = "How often are API keys rotated?"
