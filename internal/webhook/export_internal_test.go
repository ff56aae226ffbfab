package webhook

// BusyBatch is the most events the dispatcher claims at a time while the API is busy.
const BusyBatch = busyBatch
