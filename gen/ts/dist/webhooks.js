/** The Standard Webhooks headers every delivery carries. */
export const WEBHOOK_HEADERS = ["webhook-id", "webhook-timestamp", "webhook-signature"];
