import { readData } from '../../../lib/data';

// A cached GET route handler (ISR for route handlers).
export const revalidate = 60;

export async function GET() {
  return Response.json({ home: readData().home, at: Date.now() });
}
