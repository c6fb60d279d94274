// The polar-event-buffer/react entry (being built: see issues 12 and 14).
export {};
