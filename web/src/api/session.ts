// The API key lives in this tab's sessionStorage and nowhere else: it goes with the tab,
// is never written to localStorage, a cookie or the URL.

const STORAGE_KEY = 'skipflow.apiKey';

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function storeKey(key: string): void {
  sessionStorage.setItem(STORAGE_KEY, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}
