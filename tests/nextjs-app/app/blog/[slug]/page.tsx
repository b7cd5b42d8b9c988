import { unstable_cache } from 'next/cache';
import { notFound } from 'next/navigation';
import { readData } from '../../../lib/data';

// ISR; `first` is built, other slugs are rendered on their first request (dynamicParams
// defaults to true), and a slug without a post is a 404.
export const revalidate = 3600;

export function generateStaticParams() {
  return [{ slug: 'first' }];
}

// The post comes from Next's data cache, tagged as an app using `revalidateTag` tags it.
function post(slug: string) {
  return unstable_cache(async () => readData().posts?.[slug] ?? null, ['post', slug], {
    tags: ['posts', `post-${slug}`],
  })();
}

export default async function Post({ params }: { params: Promise<{ slug: string }> }) {
  const { slug } = await params;
  const body = await post(slug);
  if (body === null) {
    notFound();
  }
  return (
    <main id="post">
      post {slug} data: {body}
    </main>
  );
}
