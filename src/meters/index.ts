// The polar-event-buffer/meters entry (being built: see issues 12 and 14).
export {};
