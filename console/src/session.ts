// The token is kept in sessionStorage only: unlike localStorage, it is
// scoped to one tab and cleared when that tab closes.
const TOKEN_KEY = "pulse-console-token";

export function loadToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}
